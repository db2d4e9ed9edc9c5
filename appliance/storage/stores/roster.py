"""Roster items and roster versions in SQL."""

from __future__ import annotations

import json

from appliance.storage.api import RosterItem
from appliance.storage.engine import Connection
from appliance.storage.stores._errors import account_required
from appliance.storage.workers import Database

_COLUMNS = "contact, name, subscription, ask, approved, group_names"

_BUMP_VERSION = (
    "INSERT INTO roster_versions (host, username, version) VALUES (?, ?, 1) "
    "ON CONFLICT (host, username) DO UPDATE SET version = roster_versions.version + 1 "
    "RETURNING version"
)


def _item(row: tuple[object, ...]) -> RosterItem:
    contact, name, subscription, ask, approved, group_names = row
    groups = json.loads(str(group_names))
    return RosterItem(
        contact=str(contact),
        name=None if name is None else str(name),
        subscription=str(subscription),
        ask=bool(ask),
        approved=bool(approved),
        groups=tuple(str(g) for g in groups),
    )


def _bump(conn: Connection, host: str, user: str) -> int:
    row = conn.execute(_BUMP_VERSION, (host, user)).fetchone()
    assert row is not None
    return int(row[0])


class RosterStore:
    """``storage.api.RosterStore`` on a ``Database``; every change bumps the user's roster version."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def items(self, host: str, user: str) -> list[RosterItem]:
        def select(conn: Connection) -> list[RosterItem]:
            sql = f"SELECT {_COLUMNS} FROM roster_items WHERE host = ? AND username = ? ORDER BY contact"
            return [_item(row) for row in conn.execute(sql, (host, user))]

        return await self._db.read(select)

    async def item(self, host: str, user: str, contact: str) -> RosterItem | None:
        def select(conn: Connection) -> RosterItem | None:
            sql = f"SELECT {_COLUMNS} FROM roster_items WHERE host = ? AND username = ? AND contact = ?"
            row = conn.execute(sql, (host, user, contact)).fetchone()
            return None if row is None else _item(row)

        return await self._db.read(select)

    async def put(self, host: str, user: str, item: RosterItem) -> int:
        groups = json.dumps(list(item.groups), ensure_ascii=False)

        def upsert(conn: Connection) -> int:
            with account_required(host, user):
                conn.execute(
                    f"INSERT INTO roster_items (host, username, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (host, username, contact) DO UPDATE SET name = excluded.name, "
                    "subscription = excluded.subscription, ask = excluded.ask, "
                    "approved = excluded.approved, group_names = excluded.group_names",
                    (host, user, item.contact, item.name, item.subscription, item.ask, item.approved, groups),
                )
            return _bump(conn, host, user)

        return await self._db.write(upsert)

    async def remove(self, host: str, user: str, contact: str) -> int | None:
        def delete(conn: Connection) -> int | None:
            conn.execute(
                "DELETE FROM roster_items WHERE host = ? AND username = ? AND contact = ?",
                (host, user, contact),
            )
            return _bump(conn, host, user) if conn.changes() else None

        return await self._db.write(delete)

    async def version(self, host: str, user: str) -> int:
        def select(conn: Connection) -> int:
            sql = "SELECT version FROM roster_versions WHERE host = ? AND username = ?"
            row = conn.execute(sql, (host, user)).fetchone()
            return 0 if row is None else int(row[0])

        return await self._db.read(select)

    async def count(self, host: str, user: str) -> int:
        def count(conn: Connection) -> int:
            sql = "SELECT count(*) FROM roster_items WHERE host = ? AND username = ?"
            row = conn.execute(sql, (host, user)).fetchone()
            return int(row[0]) if row else 0

        return await self._db.read(count)
