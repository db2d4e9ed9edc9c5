"""Blocked JIDs (XEP-0191) in SQL."""

from __future__ import annotations

from appliance.storage.engine import Connection
from appliance.storage.stores._errors import account_required
from appliance.storage.workers import Database


class BlocklistStore:
    """``storage.api.BlocklistStore`` on a ``Database``; adding a JID twice is harmless."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def items(self, host: str, user: str) -> list[str]:
        def select(conn: Connection) -> list[str]:
            sql = "SELECT jid FROM blocklist WHERE host = ? AND username = ? ORDER BY jid"
            return [str(jid) for (jid,) in conn.execute(sql, (host, user))]

        return await self._db.read(select)

    async def add(self, host: str, user: str, jids: list[str]) -> None:
        def insert(conn: Connection) -> None:
            with account_required(host, user):
                conn.executemany(
                    "INSERT INTO blocklist (host, username, jid) VALUES (?, ?, ?) "
                    "ON CONFLICT (host, username, jid) DO NOTHING",
                    [(host, user, jid) for jid in jids],
                )

        if jids:
            await self._db.write(insert)

    async def remove(self, host: str, user: str, jids: list[str]) -> None:
        def delete(conn: Connection) -> None:
            conn.executemany(
                "DELETE FROM blocklist WHERE host = ? AND username = ? AND jid = ?",
                [(host, user, jid) for jid in jids],
            )

        if jids:
            await self._db.write(delete)

    async def clear(self, host: str, user: str) -> None:
        def delete(conn: Connection) -> None:
            conn.execute("DELETE FROM blocklist WHERE host = ? AND username = ?", (host, user))

        await self._db.write(delete)
