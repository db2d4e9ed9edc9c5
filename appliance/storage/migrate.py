"""Forward-only schema migrations: numbered ``NNNN_name.sql`` files and a ``schema_version`` table.

Migrations are packaged data read through importlib.resources (PyInstaller-safe). Before migrating a
database that already holds a schema, an online copy is taken with apsw's backup API to
``<db>.pre-migration-<first pending version>.bak``. Each migration runs in its own transaction together
with its ``schema_version`` row, so a failed migration leaves the database at the previous version.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

import apsw

log = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

CREATE_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL
)
"""


class MigrationError(RuntimeError):
    """The schema cannot be brought up to date (bad migration set, newer database, failing SQL)."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema change."""

    version: int
    name: str
    sql: str


def packaged_migrations(folder: str = "migrations") -> Traversable:
    """A migration directory shipped inside the package (SQLite's, or ``migrations_postgresql``)."""
    return importlib.resources.files("appliance.storage").joinpath(folder)


def load_migrations(source: Traversable | None = None, extra: Sequence[Migration] = ()) -> list[Migration]:
    """Read ``NNNN_name.sql`` files and add `extra` (the migrations a store keeps beside its code),
    checking versions run 1, 2, 3 … without gaps or duplicates."""
    directory = source if source is not None else packaged_migrations()
    found: list[Migration] = list(extra)
    for entry in directory.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None or not entry.is_file():
            continue
        found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"migrations must be numbered 0001, 0002, … without gaps or duplicates; "
                f"expected {expected:04d}, found {migration.version:04d}_{migration.name}.sql"
            )
    return found


def current_version(conn: apsw.Connection) -> int:
    """The highest applied migration, 0 for a database without ``schema_version``."""
    if not _table_exists(conn, "schema_version"):
        return 0
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


def backup(conn: apsw.Connection, destination: Path, *, pages: int = 1024) -> None:
    """Online copy of ``conn``'s main database to ``destination`` (written aside, then renamed), `pages`
    at a time (-1: all in one step, under one read transaction, so writers elsewhere cannot restart it)."""
    partial = destination.with_name(destination.name + ".partial")
    partial.unlink(missing_ok=True)
    target = apsw.Connection(str(partial))
    try:
        with target.backup("main", conn, "main") as copy:
            while not copy.done:
                copy.step(pages)
        target.execute("PRAGMA journal_mode = DELETE").fetchall()  # a single self-contained file
    finally:
        target.close()
    os.replace(partial, destination)


def migrate(
    conn: apsw.Connection, db_path: Path, source: Traversable | None = None, extra: Sequence[Migration] = ()
) -> list[int]:
    """Apply pending migrations; returns the versions applied (empty when already current)."""
    migrations = load_migrations(source, extra)
    has_schema = _has_schema(conn)
    version = current_version(conn)
    latest = migrations[-1].version if migrations else 0
    if version > latest:
        raise MigrationError(
            f"database {db_path} is at schema version {version} but this Parlour only knows up to {latest}; "
            f"run a newer Parlour or restore a backup"
        )
    pending = [m for m in migrations if m.version > version]
    if not pending:
        return []
    if has_schema:
        target = db_path.with_name(f"{db_path.name}.pre-migration-{pending[0].version}.bak")
        log.info("backing up %s to %s before migrating", db_path, target)
        backup(conn, target)
    conn.execute(CREATE_VERSION_TABLE)
    for migration in pending:
        _apply(conn, migration)
        log.info("applied migration %04d_%s to %s", migration.version, migration.name, db_path)
    return [m.version for m in pending]


def _apply(conn: apsw.Connection, migration: Migration) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for _ in conn.execute(migration.sql):  # step through every statement of the script
            pass
        conn.execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, time.time()),
        )
        conn.execute("COMMIT")
    except apsw.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise MigrationError(f"migration {migration.version:04d}_{migration.name}.sql failed: {exc}") from exc


def _table_exists(conn: apsw.Connection, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
    return row is not None


def _has_schema(conn: apsw.Connection) -> bool:
    """True when the file holds anything beyond an empty ``schema_version`` (i.e. is not fresh)."""
    row = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND name != 'schema_version'"
    ).fetchone()
    return bool(row and row[0]) or current_version(conn) > 0
