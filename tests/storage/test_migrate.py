"""Forward-only migrations, schema_version, and the pre-migration backup."""

from __future__ import annotations

import shutil
from pathlib import Path

import apsw
import pytest

from appliance.storage.migrate import Migration, MigrationError, load_migrations, packaged_migrations
from appliance.storage.sqlite import Database


def _versions(conn: apsw.Connection) -> list[int]:
    return [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY version")]


LAST = len(load_migrations())  # the packaged schema version; test migrations come after it
NEXT = LAST + 1


def _with_extra(tmp_path: Path, name: str, sql: str) -> Path:
    """A copy of the packaged migrations plus one more file."""
    directory = tmp_path / "migrations"
    directory.mkdir()
    for entry in packaged_migrations().iterdir():
        if entry.name.endswith(".sql"):
            (directory / entry.name).write_text(entry.read_text(encoding="utf-8"), encoding="utf-8")
    (directory / name).write_text(sql, encoding="utf-8")
    return directory


def test_packaged_migrations_load_in_order() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations][:1] == [1]
    assert migrations[0].name == "core"


async def test_fresh_database_gets_schema_version_and_no_backup(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "p.db")
    try:
        assert await db.read(_versions) == [m.version for m in load_migrations()]
        tables = await db.read(
            lambda c: {n for (n,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        )
        assert {"accounts", "scram_keys", "roster_items", "offline_messages", "kv", "blocklist"} <= tables
    finally:
        await db.close()
    assert list(tmp_path.glob("*.bak")) == []


async def test_reopen_applies_nothing(tmp_path: Path) -> None:
    for _ in range(2):
        db = await Database.open(tmp_path / "p.db")
        await db.close()
    assert list(tmp_path.glob("*.bak")) == []


async def test_backup_before_migrating_a_database_with_data(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    db = await Database.open(path)
    await db.write(lambda c: c.execute("INSERT INTO accounts VALUES ('a.example', 'romeo', 0)"))
    await db.close()

    extra = _with_extra(tmp_path, f"{NEXT:04d}_notes.sql", "CREATE TABLE notes (body TEXT NOT NULL);")
    db = await Database.open(path, migrations=extra)
    try:
        assert await db.read(_versions) == [*range(1, NEXT + 1)]
        await db.write(lambda c: c.execute("INSERT INTO notes VALUES ('hi')"))
    finally:
        await db.close()

    bak = tmp_path / f"p.db.pre-migration-{NEXT}.bak"
    assert bak.exists()
    copy = apsw.Connection(str(bak))
    try:
        assert _versions(copy) == [*range(1, NEXT)]
        assert copy.execute("SELECT username FROM accounts").fetchall() == [("romeo",)]
        assert copy.execute("SELECT 1 FROM sqlite_master WHERE name = 'notes'").fetchone() is None
    finally:
        copy.close()


async def test_failed_migration_leaves_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    db = await Database.open(path)
    await db.close()
    sql = "CREATE TABLE good (x INTEGER); CREATE TABLE nonsense (;"
    broken = _with_extra(tmp_path, f"{NEXT:04d}_broken.sql", sql)
    with pytest.raises(MigrationError, match=f"{NEXT:04d}_broken"):
        await Database.open(path, migrations=broken)
    db = await Database.open(path)
    try:
        assert await db.read(_versions) == [*range(1, NEXT)]
        good = "SELECT 1 FROM sqlite_master WHERE name = 'good'"
        assert await db.read(lambda c: c.execute(good).fetchone()) is None
    finally:
        await db.close()


async def test_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    extra = _with_extra(tmp_path, f"{NEXT:04d}_notes.sql", "CREATE TABLE notes (body TEXT);")
    db = await Database.open(path, migrations=extra)
    await db.close()
    with pytest.raises(MigrationError, match=f"schema version {NEXT}"):
        await Database.open(path)


def test_gaps_in_numbering_are_rejected(tmp_path: Path) -> None:
    directory = _with_extra(tmp_path, f"{NEXT + 1:04d}_skip.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match=f"expected {NEXT:04d}"):
        load_migrations(directory)
    shutil.rmtree(directory)


# --- migrations a store keeps beside its code (collected by appliance/catalog.py) -------------------


async def test_a_store_migration_runs_after_the_numbered_files(tmp_path: Path) -> None:
    notes = Migration(NEXT, "notes", "CREATE TABLE notes (body TEXT NOT NULL);")
    db = await Database.open(tmp_path / "p.db", store_migrations=(notes,))
    try:
        await db.write(lambda c: c.execute("INSERT INTO notes VALUES ('hi')"))
        assert await db.read(_versions) == [*range(1, NEXT + 1)]
        names = await db.read(lambda c: c.execute("SELECT name FROM schema_version WHERE version = ?",
                                                  (NEXT,)).fetchall())
        assert names == [("notes",)]
    finally:
        await db.close()


def test_a_store_migration_must_continue_the_numbering() -> None:
    with pytest.raises(MigrationError, match=f"expected {NEXT:04d}, found {NEXT + 1:04d}_notes"):
        load_migrations(extra=(Migration(NEXT + 1, "notes", "SELECT 1;"),))
    with pytest.raises(MigrationError, match="without gaps or duplicates"):
        load_migrations(extra=(Migration(LAST, "clash", "SELECT 1;"),))


async def test_the_catalog_opens_every_store_by_its_protocol(tmp_path: Path) -> None:
    from appliance.catalog import STORES, open_stores
    from appliance.core.stores import MissingStore
    from appliance.storage import api

    db = await Database.open(tmp_path / "p.db")
    try:
        stores = open_stores(db, tmp_path)
        for kind, implementation in STORES:
            assert type(stores.get(kind)) is implementation
        assert stores.get(api.RosterStore) is stores.roster  # the named form the core and console use
        assert api.UploadArea in stores

        class NotesStore:
            """A store nobody implements."""

        with pytest.raises(MissingStore, match="no store implements NotesStore"):
            stores.get(NotesStore)
    finally:
        await db.close()
