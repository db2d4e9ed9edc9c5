"""PostgreSQL's migrations: in step with SQLite's, applied once, all or nothing, never downgraded."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.storage.migrate import MigrationError, load_migrations, packaged_migrations
from appliance.storage.postgres import open_postgres
from tests.pgserver import PostgresServer


def test_both_engines_have_the_same_numbered_migrations() -> None:
    sqlite = [(m.version, m.name) for m in load_migrations()]
    postgres = [(m.version, m.name) for m in load_migrations(packaged_migrations("migrations_postgresql"))]
    assert sqlite == postgres


def _with_extra(tmp_path: Path, sql: str) -> Path:
    """A copy of the packaged PostgreSQL migrations plus one more file after them."""
    directory = tmp_path / "migrations"
    directory.mkdir()
    source = packaged_migrations("migrations_postgresql")
    for entry in source.iterdir():
        if entry.name.endswith(".sql"):
            (directory / entry.name).write_text(entry.read_text(encoding="utf-8"), encoding="utf-8")
    (directory / f"{len(load_migrations(source)) + 1:04d}_extra.sql").write_text(sql, encoding="utf-8")
    return directory


async def _versions(url: str) -> list[int]:
    db = await open_postgres(url, readers=1)
    try:
        return await db.read(lambda c: [v for (v,) in c.execute("SELECT version FROM schema_version ORDER BY 1")])
    finally:
        await db.close()


async def test_fresh_database_is_migrated_once(postgres: PostgresServer) -> None:
    url = postgres.create_database()
    latest = len(load_migrations())
    assert await _versions(url) == list(range(1, latest + 1))
    assert await _versions(url) == list(range(1, latest + 1))  # reopening applies nothing again


async def test_failing_migration_leaves_the_previous_version(postgres: PostgresServer, tmp_path: Path) -> None:
    url = postgres.create_database()
    bad = _with_extra(tmp_path, "CREATE TABLE extra (n INTEGER);\nSELECT no_such_function();")
    with pytest.raises(MigrationError, match=r"extra\.sql failed"):
        await open_postgres(url, migrations=bad)
    assert await _versions(url) == list(range(1, len(load_migrations()) + 1))
    db = await open_postgres(url, readers=1)
    try:  # the migration's first statement was rolled back with it
        assert await db.read(lambda c: c.execute("SELECT to_regclass('extra')").fetchone()[0]) is None
    finally:
        await db.close()


async def test_newer_database_is_refused(postgres: PostgresServer, tmp_path: Path) -> None:
    url = postgres.create_database()
    db = await open_postgres(url, migrations=_with_extra(tmp_path, "CREATE TABLE extra (n INTEGER);"))
    await db.close()
    with pytest.raises(MigrationError, match="only knows up to"):
        await open_postgres(url)
