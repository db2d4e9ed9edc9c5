"""Small per-host documents (the message of the day) in SQL."""

from __future__ import annotations

import time

from appliance.storage.engine import Connection
from appliance.storage.workers import Database


class HostValueStore:
    """``storage.api.HostValueStore`` on a ``Database``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, host: str, store: str, key: str) -> bytes | None:
        def select(conn: Connection) -> bytes | None:
            row = conn.execute(
                "SELECT value FROM host_kv WHERE host = ? AND store = ? AND key_name = ?", (host, store, key)
            ).fetchone()
            return None if row is None else bytes(row[0])

        return await self._db.read(select)

    async def put(self, host: str, store: str, key: str, value: bytes) -> None:
        now = time.time()

        def upsert(conn: Connection) -> None:
            conn.execute(
                "INSERT INTO host_kv (host, store, key_name, value, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (host, store, key_name) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at",
                (host, store, key, value, now),
            )

        await self._db.write(upsert)

    async def delete(self, host: str, store: str, key: str) -> bool:
        def delete(conn: Connection) -> bool:
            conn.execute("DELETE FROM host_kv WHERE host = ? AND store = ? AND key_name = ?", (host, store, key))
            return conn.changes() > 0

        return await self._db.write(delete)
