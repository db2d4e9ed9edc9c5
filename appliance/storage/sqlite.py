"""SQLite engine on apsw: the embedded default, one file, served by the threads of workers.py.

The writer opens with WAL and ``synchronous=FULL``, so each group COMMIT is fsynced and a resolved
``write()`` is durable even on kill -9; readers are ``query_only`` connections.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from importlib.resources.abc import Traversable
from pathlib import Path

import apsw

from appliance.storage.migrate import Migration, migrate
from appliance.storage.workers import Database as _Threads
from appliance.storage.workers import DatabaseClosed, Transactions, WriterStats
from appliance.util.files import private_file

__all__ = ["Database", "DatabaseClosed", "WriterStats"]

log = logging.getLogger(__name__)


def _connect(path: Path, busy_timeout_ms: int) -> apsw.Connection:
    conn = apsw.Connection(str(path))
    conn.set_busy_timeout(busy_timeout_ms)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class Database(_Threads):
    """An SQLite database file served by one writer thread and a few reader threads."""

    path: Path

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        readers: int = 2,
        batch_limit: int = 512,
        busy_timeout_ms: int = 10_000,
        migrations: Traversable | None = None,
        store_migrations: Sequence[Migration] = (),
    ) -> Database:
        """Open (creating parent directories), migrate, and start the threads.

        ``migrations`` overrides the packaged migration directory (tests inject extra migrations);
        ``store_migrations`` are those that stores keep beside their code (the catalog collects them).
        """
        db_path = Path(path)

        def connect_writer() -> apsw.Connection:
            db_path.parent.mkdir(parents=True, exist_ok=True)
            # Made 0600 before SQLite opens it: SQLite gives its -wal and -shm files the database's mode.
            private_file(db_path)
            for companion in ("-wal", "-shm", "-journal"):  # left by an older version with the umask's mode
                private_file(Path(f"{db_path}{companion}"), create=False)
            conn = _connect(db_path, busy_timeout_ms)
            try:
                conn.execute("PRAGMA journal_mode = WAL").fetchall()
                conn.execute("PRAGMA synchronous = FULL")
                migrate(conn, db_path, migrations, store_migrations)
            except BaseException:
                conn.close()
                raise
            return conn

        def connect_reader() -> apsw.Connection:
            conn = _connect(db_path, busy_timeout_ms)
            conn.execute("PRAGMA query_only = ON")
            return conn

        transactions = Transactions(connect_writer, connect_reader, "BEGIN IMMEDIATE", "BEGIN")
        db = await cls.start(str(db_path), transactions, readers=readers, batch_limit=batch_limit)
        assert isinstance(db, Database)
        db.path = db_path
        return db

    async def size(self) -> int:
        """The database file and its write-ahead log."""
        return await asyncio.to_thread(_size_on_disk, self.path)


def _size_on_disk(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
