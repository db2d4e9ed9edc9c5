"""Shared-roster groups and their members in SQL."""

from __future__ import annotations

import time

from appliance.storage.api import AlreadyExists, SharedGroup
from appliance.storage.engine import Connection
from appliance.storage.stores._errors import account_required
from appliance.storage.workers import Database


def _exists(conn: Connection, host: str, name: str) -> bool:
    sql = "SELECT 1 FROM shared_groups WHERE host = ? AND name = ?"
    return conn.execute(sql, (host, name)).fetchone() is not None


class SharedGroupStore:
    """``storage.api.SharedGroupStore`` on a ``Database``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def groups(self, host: str) -> list[SharedGroup]:
        def select(conn: Connection) -> list[SharedGroup]:
            members: dict[str, list[str]] = {}
            sql = "SELECT group_name, username FROM shared_group_members WHERE host = ? ORDER BY username"
            for group_name, username in conn.execute(sql, (host,)):
                members.setdefault(str(group_name), []).append(str(username))
            sql = "SELECT name, everyone, directory_group FROM shared_groups WHERE host = ? ORDER BY name"
            return [
                SharedGroup(host, str(name), bool(everyone), str(directory), tuple(members.get(str(name), ())))
                for name, everyone, directory in conn.execute(sql, (host,))
            ]

        return await self._db.read(select)

    async def create(self, group: SharedGroup) -> None:
        now = time.time()

        def insert(conn: Connection) -> None:
            if _exists(conn, group.host, group.name):
                raise AlreadyExists(f"shared group {group.name!r} on {group.host}")
            conn.execute(
                "INSERT INTO shared_groups (host, name, everyone, directory_group, created_at) VALUES (?, ?, ?, ?, ?)",
                (group.host, group.name, group.everyone, group.directory_group, now),
            )
            for username in group.members:
                with account_required(group.host, username):
                    conn.execute(
                        "INSERT INTO shared_group_members (host, group_name, username) VALUES (?, ?, ?)",
                        (group.host, group.name, username),
                    )

        await self._db.write(insert)

    async def rename(self, host: str, name: str, new_name: str) -> bool:
        def change(conn: Connection) -> bool:
            if new_name != name and _exists(conn, host, new_name):
                raise AlreadyExists(f"shared group {new_name!r} on {host}")
            # The members follow by ON UPDATE CASCADE.
            conn.execute("UPDATE shared_groups SET name = ? WHERE host = ? AND name = ?", (new_name, host, name))
            return conn.changes() > 0

        return await self._db.write(change)

    async def update(self, host: str, name: str, *, everyone: bool, directory_group: str) -> bool:
        def change(conn: Connection) -> bool:
            conn.execute(
                "UPDATE shared_groups SET everyone = ?, directory_group = ? WHERE host = ? AND name = ?",
                (everyone, directory_group, host, name),
            )
            return conn.changes() > 0

        return await self._db.write(change)

    async def delete(self, host: str, name: str) -> bool:
        def delete(conn: Connection) -> bool:
            conn.execute("DELETE FROM shared_groups WHERE host = ? AND name = ?", (host, name))
            return conn.changes() > 0

        return await self._db.write(delete)

    async def add_member(self, host: str, name: str, username: str) -> bool:
        def insert(conn: Connection) -> bool:
            if not _exists(conn, host, name):
                return False
            with account_required(host, username):
                conn.execute(
                    "INSERT INTO shared_group_members (host, group_name, username) VALUES (?, ?, ?) "
                    "ON CONFLICT (host, group_name, username) DO NOTHING",
                    (host, name, username),
                )
            return True

        return await self._db.write(insert)

    async def remove_member(self, host: str, name: str, username: str) -> bool:
        def delete(conn: Connection) -> bool:
            conn.execute(
                "DELETE FROM shared_group_members WHERE host = ? AND group_name = ? AND username = ?",
                (host, name, username),
            )
            return conn.changes() > 0

        return await self._db.write(delete)
