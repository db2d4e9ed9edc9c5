"""Small per-user documents (private XML, vCard, last activity) in SQL."""

from __future__ import annotations

import time

from appliance.storage.engine import Connection
from appliance.storage.stores._errors import account_required
from appliance.storage.workers import Database


class KeyValueStore:
    """``storage.api.KeyValueStore`` on a ``Database``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, host: str, user: str, store: str, key: str) -> bytes | None:
        def select(conn: Connection) -> bytes | None:
            row = conn.execute(
                "SELECT value FROM kv WHERE host = ? AND username = ? AND store = ? AND key_name = ?",
                (host, user, store, key),
            ).fetchone()
            return None if row is None else bytes(row[0])

        return await self._db.read(select)

    async def put(self, host: str, user: str, store: str, key: str, value: bytes) -> None:
        now = time.time()

        def upsert(conn: Connection) -> None:
            with account_required(host, user):
                conn.execute(
                    "INSERT INTO kv (host, username, store, key_name, value, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (host, username, store, key_name) "
                    "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                    (host, user, store, key, value, now),
                )

        await self._db.write(upsert)

    async def delete(self, host: str, user: str, store: str, key: str) -> bool:
        def delete(conn: Connection) -> bool:
            conn.execute(
                "DELETE FROM kv WHERE host = ? AND username = ? AND store = ? AND key_name = ?",
                (host, user, store, key),
            )
            return conn.changes() > 0

        return await self._db.write(delete)

    async def all(self, host: str, user: str, store: str) -> dict[str, bytes]:
        def select(conn: Connection) -> dict[str, bytes]:
            rows = conn.execute(
                "SELECT key_name, value FROM kv WHERE host = ? AND username = ? AND store = ? "
                "ORDER BY key_name",
                (host, user, store),
            )
            return {str(k): bytes(v) for k, v in rows}

        return await self._db.read(select)
