"""Offline message queue in SQL."""

from __future__ import annotations

import time

from appliance.storage.api import OfflineMessage
from appliance.storage.engine import Connection
from appliance.storage.stores._errors import account_required
from appliance.storage.workers import Database

_COUNT = "SELECT count(*) FROM offline_messages WHERE host = ? AND username = ?"


def _count(conn: Connection, host: str, user: str) -> int:
    row = conn.execute(_COUNT, (host, user)).fetchone()
    return int(row[0]) if row else 0


class OfflineStore:
    """``storage.api.OfflineStore`` on a ``Database``; the limit check and insert share one job."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def push(self, host: str, user: str, stanza: bytes, limit: int) -> bool:
        now = time.time()

        def insert(conn: Connection) -> bool:
            if _count(conn, host, user) >= limit:
                return False
            with account_required(host, user):
                conn.execute(
                    "INSERT INTO offline_messages (host, username, stanza, stored_at) VALUES (?, ?, ?, ?)",
                    (host, user, stanza, now),
                )
            return True

        return await self._db.write(insert)

    async def fetch(self, host: str, user: str) -> list[OfflineMessage]:
        def select(conn: Connection) -> list[OfflineMessage]:
            rows = conn.execute(
                "SELECT id, stanza, stored_at FROM offline_messages WHERE host = ? AND username = ? "
                "ORDER BY id",
                (host, user),
            )
            return [OfflineMessage(int(i), bytes(s), float(t)) for i, s, t in rows]

        return await self._db.read(select)

    async def delete(self, host: str, user: str, ids: list[int]) -> None:
        def delete(conn: Connection) -> None:
            conn.executemany(
                "DELETE FROM offline_messages WHERE host = ? AND username = ? AND id = ?",
                [(host, user, i) for i in ids],
            )

        if ids:
            await self._db.write(delete)

    async def count(self, host: str, user: str) -> int:
        return await self._db.read(lambda conn: _count(conn, host, user))
