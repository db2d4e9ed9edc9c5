"""Move an installation's data from its SQLite file to PostgreSQL (`parlour db migrate`), and tell the
schema version of a database without changing it (`parlour check`).

The copy reads one SQLite snapshot (a read transaction: the server may keep running, later writes are
not part of the copy) and writes everything in one PostgreSQL transaction: a target that was not empty,
a failing row or a count that differs rolls the whole copy back. Tables are copied parents first (their
foreign keys say the order) with COPY, the identity sequences are moved past the copied ids, and the
rows of every table are counted on both sides before the COMMIT.
"""

from __future__ import annotations

import graphlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw
import psycopg
from psycopg import sql

from appliance.storage.migrate import MigrationError, current_version, load_migrations, migrate, packaged_migrations
from appliance.storage.postgres import describe, open_postgres
from appliance.storage.sqlite import Database as SQLite


class TransferError(RuntimeError):
    """The copy was refused or failed; nothing was committed to the target."""


@dataclass(frozen=True, slots=True)
class TableCount:
    """Rows of one table in the source and in the target after the copy."""

    table: str
    source: int
    target: int


def _tables(conn: apsw.Connection) -> list[str]:
    """The source's tables (not schema_version), every table after the tables its foreign keys name."""
    names = [name for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name != 'schema_version' ORDER BY name")]
    graph = {name: {row[2] for row in conn.execute(f'PRAGMA foreign_key_list("{name}")')} for name in names}
    return list(graphlib.TopologicalSorter(graph).static_order())


def _columns(conn: apsw.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]


def _copy(source: apsw.Connection, target: psycopg.Connection[Any], table: str) -> tuple[int, int]:
    columns = _columns(source, table)
    names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    copied = 0
    with target.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), names)) as copy:
        quoted = ", ".join(f'"{c}"' for c in columns)
        for row in source.execute(f'SELECT {quoted} FROM "{table}"'):
            copy.write_row(row)
            copied += 1
    counted = target.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
    return copied, int(counted[0]) if counted else 0


def _advance_identities(target: psycopg.Connection[Any]) -> None:
    """Identity columns continue after the highest copied id (BY DEFAULT identities took the ids given)."""
    rows = target.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE is_identity = 'YES' AND table_schema = current_schema()").fetchall()
    for table, column in rows:
        target.execute(
            sql.SQL("SELECT setval(pg_get_serial_sequence({t}, {c}), coalesce(max({col}), 0) + 1, false) FROM {tab}")
            .format(t=sql.Literal(table), c=sql.Literal(column), col=sql.Identifier(column), tab=sql.Identifier(table))
        )


def _copy_all(source: apsw.Connection, url: str) -> list[TableCount]:
    """Runs on the SQLite reader thread, inside its read transaction (one snapshot)."""
    counts: list[TableCount] = []
    with psycopg.connect(url, connect_timeout=10) as target:  # one transaction: COMMIT on leaving
        target.execute("SET synchronous_commit = on")
        for table in _tables(source):
            exists = target.execute("SELECT to_regclass(%s)", (table,)).fetchone()
            if exists is None or exists[0] is None:
                raise TransferError(f"{describe(url)} has no table {table}: is it Parlour's schema?")
            if target.execute(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(sql.Identifier(table))).fetchone():
                raise TransferError(f"{describe(url)} already holds data (table {table}): copy into an empty "
                                    f"database")
            source_rows, target_rows = _copy(source, target, table)
            counts.append(TableCount(table, source_rows, target_rows))
        _advance_identities(target)
        differ = [c for c in counts if c.source != c.target]
        if differ:
            raise TransferError("row counts differ: " + ", ".join(f"{c.table} {c.source} -> {c.target}"
                                                                  for c in differ))
    return counts


async def transfer(source: Path, url: str) -> list[TableCount]:
    """Copy every table of the SQLite file `source` into the (empty) PostgreSQL database `url`; both are
    brought to this build's schema first, so they hold the same tables."""
    if not source.is_file():
        raise TransferError(f"{source}: no such database file")
    target = await open_postgres(url, readers=1)  # creates (migrates) the schema
    await target.close()
    db = await SQLite.open(source, readers=1)
    try:
        return await db.read(lambda conn: _copy_all(conn, url))
    finally:
        await db.close()


def copy_to_sqlite(url: str, target: Path) -> None:
    """Copy every table of the PostgreSQL database `url` into a new SQLite file `target` (blocking): one
    REPEATABLE READ snapshot, so a running server's later writes are not part of it, and rows read through a
    server-side cursor, so an archive of any size never sits in memory whole. The backup of a PostgreSQL
    install is such a file: it restores onto either engine, and no pg_dump of the server's version is needed."""
    conn = apsw.Connection(str(target))
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn, target)
        with psycopg.connect(url, connect_timeout=10) as source:
            source.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            source.read_only = True
            row = source.execute("SELECT max(version) FROM schema_version").fetchone()
            if row is None or row[0] != current_version(conn):
                raise TransferError(f"{describe(url)} is at schema version {row[0] if row else 0}, this Parlour at "
                                    f"{current_version(conn)}: start the server once (it migrates), then back up")
            with conn:  # one SQLite transaction
                for table in _tables(conn):
                    columns = _columns(conn, table)
                    names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
                    marks = ", ".join("?" for _ in columns)
                    quoted = ", ".join(f'"{c}"' for c in columns)
                    with source.cursor(name=f"dump_{table}") as rows:
                        rows.execute(sql.SQL("SELECT {} FROM {}").format(names, sql.Identifier(table)))
                        conn.executemany(f'INSERT INTO "{table}" ({quoted}) VALUES ({marks})', rows)
    except BaseException:
        conn.close()
        target.unlink(missing_ok=True)
        raise
    conn.close()


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """A database's schema version next to the newest this build knows."""

    version: int
    latest: int


def schema_status(location: str | Path) -> SchemaStatus:
    """Connect (read only, no migration) and read the schema version; raises on an unreachable database.
    Blocking: call it from a thread or a CLI."""
    if isinstance(location, str):
        latest = len(load_migrations(packaged_migrations("migrations_postgresql")))
        with psycopg.connect(location, connect_timeout=5) as conn:
            regclass = conn.execute("SELECT to_regclass('schema_version')").fetchone()
            if regclass is None or regclass[0] is None:
                return SchemaStatus(0, latest)
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            return SchemaStatus(int(row[0] or 0) if row else 0, latest)
    latest = len(load_migrations())
    if not location.exists():
        return SchemaStatus(0, latest)
    conn = apsw.Connection(str(location), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return SchemaStatus(current_version(conn), latest)
    finally:
        conn.close()


__all__ = ["MigrationError", "SchemaStatus", "TableCount", "TransferError", "copy_to_sqlite", "schema_status",
           "transfer"]
