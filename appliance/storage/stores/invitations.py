"""Invitations (XEP-0401) in SQL: one UPDATE claims a use, so concurrent redemptions never overrun."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from appliance.storage.api import Invitation
from appliance.storage.engine import Connection
from appliance.storage.workers import Database

_COLUMNS = "id, digest, host, creator, expires_at, created_at, inviter, username, groups_json, max_uses, uses"


def _record(row: Sequence[Any], used_by: tuple[str, ...]) -> Invitation:
    (id_, digest, host, creator, expires, created, inviter, username, groups, max_uses, uses) = row
    return Invitation(str(id_), str(digest), str(host), str(creator), float(expires), float(created),
                      str(inviter), str(username), tuple(json.loads(groups)), int(max_uses), int(uses), used_by)


def _used_by(conn: Connection, invitation_id: str) -> tuple[str, ...]:
    sql = "SELECT jid FROM invitation_uses WHERE invitation_id = ? ORDER BY used_at, jid"
    return tuple(str(jid) for (jid,) in conn.execute(sql, (invitation_id,)))


def _select(conn: Connection, where: str, params: tuple[object, ...]) -> list[Invitation]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM invitations {where}", params).fetchall()
    return [_record(row, _used_by(conn, str(row[0]))) for row in rows]


class InvitationStore:
    """``storage.api.InvitationStore`` on a ``Database``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, invitation: Invitation) -> None:
        i = invitation

        def insert(conn: Connection) -> None:
            conn.execute(
                f"INSERT INTO invitations ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (i.id, i.digest, i.host, i.creator, i.expires, i.created, i.inviter, i.username,
                 json.dumps(list(i.groups)), i.max_uses, i.uses),
            )

        await self._db.write(insert)

    async def find(self, digest: str) -> Invitation | None:
        def select(conn: Connection) -> Invitation | None:
            found = _select(conn, "WHERE digest = ?", (digest,))
            return found[0] if found else None

        return await self._db.read(select)

    async def list(self, host: str | None = None) -> list[Invitation]:
        def select(conn: Connection) -> list[Invitation]:
            if host is None:
                return _select(conn, "ORDER BY created_at DESC, id", ())
            return _select(conn, "WHERE host = ? ORDER BY created_at DESC, id", (host,))

        return await self._db.read(select)

    async def claim(self, digest: str, jid: str, now: float) -> Invitation | None:
        def update(conn: Connection) -> Invitation | None:
            # The check and the count are one statement: of concurrent claims only `max_uses` succeed.
            conn.execute(
                "UPDATE invitations SET uses = uses + 1 WHERE digest = ? AND uses < max_uses AND expires_at > ?",
                (digest, now),
            )
            if conn.changes() != 1:
                return None
            (found,) = _select(conn, "WHERE digest = ?", (digest,))
            conn.execute("INSERT INTO invitation_uses (invitation_id, jid, used_at) VALUES (?, ?, ?)",
                         (found.id, jid, now))
            return _record_with(found, jid)

        return await self._db.write(update)

    async def release(self, invitation_id: str, jid: str) -> None:
        def update(conn: Connection) -> None:
            conn.execute("DELETE FROM invitation_uses WHERE invitation_id = ? AND jid = ?", (invitation_id, jid))
            if conn.changes():
                conn.execute("UPDATE invitations SET uses = uses - 1 WHERE id = ? AND uses > 0", (invitation_id,))

        await self._db.write(update)

    async def delete(self, invitation_id: str) -> bool:
        def delete(conn: Connection) -> bool:
            conn.execute("DELETE FROM invitations WHERE id = ?", (invitation_id,))
            return conn.changes() > 0

        return await self._db.write(delete)

    async def reserved(self, host: str, username: str, now: float) -> bool:
        def select(conn: Connection) -> bool:
            sql = ("SELECT 1 FROM invitations WHERE host = ? AND username = ? AND uses < max_uses "
                   "AND expires_at > ?")
            return conn.execute(sql, (host, username, now)).fetchone() is not None

        return await self._db.read(select)


def _record_with(found: Invitation, jid: str) -> Invitation:
    """`found` as read inside the claim, which already counts the use `jid` makes."""
    return Invitation(found.id, found.digest, found.host, found.creator, found.expires, found.created,
                      found.inviter, found.username, found.groups, found.max_uses, found.uses,
                      (*found.used_by, jid))
