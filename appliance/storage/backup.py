"""Consistent copies of a live database for backups, and what a copy holds (schema version, row counts)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import apsw

from appliance.storage.migrate import MigrationError, backup, current_version

# What a backup's manifest counts: name shown -> table.
COUNTED = {
    "accounts": "accounts",
    "roster items": "roster_items",
    "offline messages": "offline_messages",
    "archived messages": "archive",
    "rooms": "muc_rooms",
    "pubsub items": "pubsub_items",
}
BUSY_TIMEOUT_MS = 30_000  # the server's writer holds its lock for one group commit at most


class BadDatabase(ValueError):
    """The file is not a Parlour database SQLite can read."""


@dataclass(frozen=True, slots=True)
class DatabaseSummary:
    """The schema version of a database and how many rows of each kind it holds."""

    schema_version: int
    counts: dict[str, int]


def copy_live_database(source: Path, target: Path) -> DatabaseSummary:
    """Copy `source` to `target` with SQLite's backup API while a server may be writing to it: one read
    transaction sees one committed state (WAL lets the writer go on meanwhile); the copy is checked."""
    conn = apsw.Connection(str(source), flags=apsw.SQLITE_OPEN_READWRITE)
    try:
        conn.set_busy_timeout(BUSY_TIMEOUT_MS)
        backup(conn, target, pages=-1)
    finally:
        conn.close()
    return summarize(target)


def copy_postgres_database(url: str, target: Path) -> DatabaseSummary:
    """Copy the PostgreSQL database `url` (one snapshot, while a server may write) into the SQLite file
    `target`, which a backup holds as it holds an SQLite install's copy; the copy is checked."""
    import psycopg  # only for PostgreSQL installs

    from appliance.storage.transfer import TransferError, copy_to_sqlite

    try:
        copy_to_sqlite(url, target)
    except (TransferError, MigrationError, psycopg.Error) as exc:
        raise BadDatabase(str(exc)) from None
    return summarize(target)


def load_into_postgres(source: Path, url: str) -> None:
    """Copy the SQLite file `source` (a restored backup's database) into the empty PostgreSQL database `url`,
    in one transaction with every table's rows counted; `BadDatabase` says why when it cannot."""
    import psycopg

    from appliance.storage.transfer import TransferError, transfer

    try:
        asyncio.run(transfer(source, url))
    except (TransferError, MigrationError, psycopg.Error) as exc:
        raise BadDatabase(str(exc)) from None


def summarize(path: Path) -> DatabaseSummary:
    """The schema version and row counts of the database at `path`, after SQLite's quick check."""
    if not path.is_file():
        raise BadDatabase(f"{path} does not exist")
    try:
        conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    except apsw.Error as exc:
        raise BadDatabase(f"{path}: {exc}") from None
    try:
        check = conn.execute("PRAGMA quick_check").fetchall()  # label: backup.quick_check
        if check != [("ok",)]:
            raise BadDatabase(f"{path} is damaged: {check[0][0]}")
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
        counts = {name: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # table names from COUNTED
                  for name, table in COUNTED.items() if table in tables}
        return DatabaseSummary(current_version(conn), counts)
    except apsw.Error as exc:
        raise BadDatabase(f"{path} is not a Parlour database: {exc}") from None
    finally:
        conn.close()


__all__ = ["COUNTED", "BadDatabase", "DatabaseSummary", "copy_live_database", "copy_postgres_database",
           "load_into_postgres", "summarize"]
