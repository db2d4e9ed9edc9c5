"""Accounts and their SCRAM keys in SQL."""

from __future__ import annotations

import time

from appliance.storage.api import AlreadyExists, ScramKeys
from appliance.storage.engine import CONSTRAINT_ERRORS, Connection
from appliance.storage.workers import Database

_INSERT_KEYS = (
    "INSERT INTO scram_keys (host, username, hash_name, salt, iterations, stored_key, server_key) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _key_rows(host: str, username: str, keys: list[ScramKeys]) -> list[tuple[object, ...]]:
    return [(host, username, k.hash_name, k.salt, k.iterations, k.stored_key, k.server_key) for k in keys]


class AccountStore:
    """``storage.api.AccountStore`` on a ``Database``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, host: str, username: str, keys: list[ScramKeys]) -> None:
        await self.create_many(host, [(username, keys)])

    async def create_many(self, host: str, items: list[tuple[str, list[ScramKeys]]]) -> None:
        now = time.time()

        def insert(conn: Connection) -> None:
            for username, _ in items:
                if conn.execute(
                    "SELECT 1 FROM accounts WHERE host = ? AND username = ?", (host, username)
                ).fetchone():
                    raise AlreadyExists(f"account {username}@{host} exists")
            try:
                conn.executemany(
                    "INSERT INTO accounts (host, username, created_at) VALUES (?, ?, ?)",
                    [(host, username, now) for username, _ in items],
                )
            except CONSTRAINT_ERRORS as exc:  # the same username twice within ``items``
                raise AlreadyExists(f"duplicate username in a bulk create on {host}") from exc
            conn.executemany(_INSERT_KEYS, [row for u, keys in items for row in _key_rows(host, u, keys)])

        if items:
            await self._db.write(insert)

    async def provision(self, host: str, username: str, dn: str) -> bool:
        now = time.time()

        def upsert(conn: Connection) -> bool:
            conn.execute(
                "INSERT INTO accounts (host, username, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (host, username) DO NOTHING", (host, username, now),
            )
            created = conn.changes() > 0
            conn.execute(
                "INSERT INTO directory_accounts (host, username, dn, synced_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (host, username) DO UPDATE SET dn = excluded.dn, synced_at = excluded.synced_at",
                (host, username, dn, now),
            )
            return created

        return await self._db.write(upsert)

    async def directory_dn(self, host: str, username: str) -> str | None:
        def select(conn: Connection) -> str | None:
            sql = "SELECT dn FROM directory_accounts WHERE host = ? AND username = ?"
            row = conn.execute(sql, (host, username)).fetchone()
            return None if row is None else str(row[0])

        return await self._db.read(select)

    async def delete(self, host: str, username: str) -> bool:
        def delete(conn: Connection) -> bool:
            conn.execute("DELETE FROM accounts WHERE host = ? AND username = ?", (host, username))
            return conn.changes() > 0

        return await self._db.write(delete)

    async def exists(self, host: str, username: str) -> bool:
        def exists(conn: Connection) -> bool:
            sql = "SELECT 1 FROM accounts WHERE host = ? AND username = ?"
            return conn.execute(sql, (host, username)).fetchone() is not None

        return await self._db.read(exists)

    async def get_keys(self, host: str, username: str, hash_name: str) -> ScramKeys | None:
        def get(conn: Connection) -> ScramKeys | None:
            row = conn.execute(
                "SELECT salt, iterations, stored_key, server_key FROM scram_keys "
                "WHERE host = ? AND username = ? AND hash_name = ?",
                (host, username, hash_name),
            ).fetchone()
            if row is None:
                return None
            salt, iterations, stored_key, server_key = row
            return ScramKeys(hash_name, bytes(salt), int(iterations), bytes(stored_key), bytes(server_key))

        return await self._db.read(get)

    async def set_keys(self, host: str, username: str, keys: list[ScramKeys]) -> bool:
        def replace(conn: Connection) -> bool:
            sql = "SELECT 1 FROM accounts WHERE host = ? AND username = ?"
            if conn.execute(sql, (host, username)).fetchone() is None:
                return False
            conn.execute("DELETE FROM scram_keys WHERE host = ? AND username = ?", (host, username))
            conn.executemany(_INSERT_KEYS, _key_rows(host, username, keys))
            return True

        return await self._db.write(replace)

    async def list_users(
        self, host: str, *, prefix: str = "", limit: int = 1000, offset: int = 0
    ) -> list[str]:
        def select(conn: Connection) -> list[str]:
            if prefix:
                rows = conn.execute(
                    "SELECT username FROM accounts WHERE host = ? AND substr(username, 1, ?) = ? "
                    "ORDER BY username LIMIT ? OFFSET ?",
                    (host, len(prefix), prefix, limit, offset),
                )
            else:
                rows = conn.execute(
                    "SELECT username FROM accounts WHERE host = ? ORDER BY username LIMIT ? OFFSET ?",
                    (host, limit, offset),
                )
            return [username for (username,) in rows]

        return await self._db.read(select)

    async def count(self, host: str) -> int:
        def count(conn: Connection) -> int:
            row = conn.execute("SELECT count(*) FROM accounts WHERE host = ?", (host,)).fetchone()
            return int(row[0]) if row else 0

        return await self._db.read(count)

    async def set_disabled(self, host: str, username: str, disabled: bool) -> bool:
        now = time.time()

        def change(conn: Connection) -> bool:
            sql = "SELECT 1 FROM accounts WHERE host = ? AND username = ?"
            if conn.execute(sql, (host, username)).fetchone() is None:
                return False
            if disabled:
                conn.execute(
                    "INSERT INTO disabled_accounts (host, username, disabled_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (host, username) DO NOTHING",
                    (host, username, now),
                )
            else:
                conn.execute("DELETE FROM disabled_accounts WHERE host = ? AND username = ?", (host, username))
            return True

        return await self._db.write(change)

    async def is_disabled(self, host: str, username: str) -> bool:
        def select(conn: Connection) -> bool:
            sql = "SELECT 1 FROM disabled_accounts WHERE host = ? AND username = ?"
            return conn.execute(sql, (host, username)).fetchone() is not None

        return await self._db.read(select)

    async def disabled(self, host: str) -> list[str]:
        def select(conn: Connection) -> list[str]:
            rows = conn.execute("SELECT username FROM disabled_accounts WHERE host = ? ORDER BY username", (host,))
            return [username for (username,) in rows]

        return await self._db.read(select)
