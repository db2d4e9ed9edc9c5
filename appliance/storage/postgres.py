"""PostgreSQL engine on psycopg 3: the same threads, stores and SQL as SQLite, on a server.

Each thread of workers.py owns one psycopg connection (the pool: one writer, ``readers`` readers), so
every store keeps its one implementation: its jobs are the same plain functions, their ``?`` placeholders
translated here. The writer group-commits like SQLite's, with ``synchronous_commit = on``: a resolved
``write()`` has been flushed to the server's WAL. Readers run REPEATABLE READ READ ONLY transactions
(one snapshot per job, as SQLite's readers). Migrations come from ``migrations_postgresql/``, numbered
and named as SQLite's, applied under an advisory lock so servers sharing a database migrate it once.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib.resources.abc import Traversable
from typing import Any

import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus

from appliance.storage.engine import ConstraintViolation, Params
from appliance.storage.migrate import (
    CREATE_VERSION_TABLE,
    Migration,
    MigrationError,
    load_migrations,
    packaged_migrations,
)
from appliance.storage.workers import Database, Transactions

log = logging.getLogger(__name__)

SCHEMES = ("postgresql", "postgres")
_MIGRATION_LOCK = 0x7061726C6F7572  # "parlour": pg_advisory_lock key held while migrating
_DML = ("INSERT", "UPDATE", "DELETE")


@functools.lru_cache(maxsize=1024)
def _translate(sql: str, bound: bool) -> tuple[str, bool]:
    """``?`` placeholders become ``%s`` (and a literal ``%`` is doubled when psycopg will format);
    the flag tells whether the statement changes rows (what ``changes()`` reports)."""
    if bound:
        sql = sql.replace("%", "%%").replace("?", "%s")
    return sql, sql.lstrip().upper().startswith(_DML)


def describe(url: str) -> str:
    """The database a URL names, without its password (for logs and messages)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "a PostgreSQL database (unparsable URL)"
    where = info.get("host") or "the default socket"
    port = f":{info['port']}" if info.get("port") else ""
    return f"PostgreSQL database {info.get('dbname') or info.get('user') or '(default)'} on {where}{port}"


@contextlib.contextmanager
def _constraints() -> Iterator[None]:
    """psycopg's integrity errors as the ``ConstraintViolation`` stores catch."""
    try:
        yield
    except psycopg.errors.IntegrityError as exc:
        foreign_key = isinstance(exc, psycopg.errors.ForeignKeyViolation)
        raise ConstraintViolation(str(exc), foreign_key=foreign_key) from exc


class PgConnection:
    """A psycopg connection behind the ``engine.Connection`` interface (apsw's method names).

    It reconnects before a transaction when the server dropped the previous connection (a restart),
    so one outage fails the jobs in flight, not every later one.
    """

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]]) -> None:
        self._connect = connect
        self._conn = connect()
        self._changes = 0

    def execute(self, statements: str, bindings: Params | None = None) -> psycopg.Cursor[Any]:
        begin = statements.startswith("BEGIN")
        if self._conn.closed or self._conn.broken:
            if not begin:
                raise psycopg.OperationalError("the connection to PostgreSQL was lost mid-transaction")
            self._conn = self._connect()
        sql, dml = _translate(statements, bindings is not None)
        with _constraints():
            try:
                cursor = self._conn.execute(sql, bindings)
            except psycopg.OperationalError:
                # An idle connection the server ended while it was away (a restart) only shows it when
                # used: at a BEGIN nothing is lost by connecting again and retrying once.
                if not begin:
                    raise
                self._conn.close()
                self._conn = self._connect()
                cursor = self._conn.execute(sql, bindings)
        if dml:
            self._changes = cursor.rowcount
        return cursor

    def executemany(self, statements: str, sequenceofbindings: Iterable[Params]) -> psycopg.Cursor[Any]:
        sql, _ = _translate(statements, True)
        cursor = self._conn.cursor()
        with _constraints():
            cursor.executemany(sql, list(sequenceofbindings))
        self._changes = cursor.rowcount
        return cursor

    def changes(self) -> int:
        return self._changes

    @property
    def in_transaction(self) -> bool:
        return not self._conn.closed and self._conn.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        self._conn.close()


def _session(url: str, connect_timeout: int) -> Callable[[], psycopg.Connection[Any]]:
    def connect() -> psycopg.Connection[Any]:
        # autocommit: the threads send BEGIN/COMMIT themselves; synchronous_commit on whatever the
        # server's default, because a resolved write() promises the COMMIT is flushed.
        conn = psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout,
                               application_name="parlour")
        conn.execute("SET synchronous_commit = on")
        return conn

    return connect


def current_version(conn: PgConnection) -> int:
    """The highest applied migration, 0 for a database without ``schema_version``."""
    if conn.execute("SELECT to_regclass('schema_version')").fetchone()[0] is None:
        return 0
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


def migrate(conn: PgConnection, name: str, source: Traversable | None = None,
            extra: Sequence[Migration] = ()) -> list[int]:
    """Apply pending migrations, each in its own transaction with its ``schema_version`` row."""
    migrations = load_migrations(source or packaged_migrations("migrations_postgresql"), extra)
    latest = migrations[-1].version if migrations else 0
    conn.execute("SELECT pg_advisory_lock(?)", (_MIGRATION_LOCK,))
    try:
        version = current_version(conn)
        if version > latest:
            raise MigrationError(
                f"{name} is at schema version {version} but this Parlour only knows up to {latest}; "
                f"run a newer Parlour or restore a backup"
            )
        pending = [m for m in migrations if m.version > version]
        if pending:
            conn.execute(CREATE_VERSION_TABLE)
        for migration in pending:
            conn.execute("BEGIN")
            try:
                conn.execute(migration.sql)
                conn.execute("INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                             (migration.version, migration.name, time.time()))
                conn.execute("COMMIT")
            except (psycopg.Error, ConstraintViolation) as exc:
                conn.execute("ROLLBACK")
                raise MigrationError(f"migration {migration.version:04d}_{migration.name}.sql failed on {name}: "
                                     f"{exc}") from exc
            log.info("applied migration %04d_%s to %s", migration.version, migration.name, name)
        return [m.version for m in pending]
    finally:
        conn.execute("SELECT pg_advisory_unlock(?)", (_MIGRATION_LOCK,))


class PostgresDatabase(Database):
    """A PostgreSQL database served by the threads of workers.py."""

    async def size(self) -> int:
        """pg_database_size of the connected database (tables, indexes, TOAST; not the server's WAL)."""
        return await self.read(_database_size)


def _database_size(conn: PgConnection) -> int:
    row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row is not None else 0


async def open_postgres(
    url: str,
    *,
    readers: int = 4,
    batch_limit: int = 512,
    connect_timeout: int = 10,
    migrations: Traversable | None = None,
    store_migrations: Sequence[Migration] = (),
) -> Database:
    """Connect the writer (migrating the schema) and ``readers`` reader connections to ``url``."""
    name = describe(url)
    connect = _session(url, connect_timeout)

    def connect_writer() -> PgConnection:
        conn = PgConnection(connect)
        try:
            migrate(conn, name, migrations, store_migrations)
        except BaseException:
            conn.close()
            raise
        return conn

    transactions = Transactions(
        connect_writer, lambda: PgConnection(connect), "BEGIN", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
    )
    return await PostgresDatabase.start(name, transactions, readers=readers, batch_limit=batch_limit)
