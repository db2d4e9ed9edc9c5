"""Fixtures: a real database per test, on each engine (SQLite file, PostgreSQL database)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from appliance.storage.connect import open_database
from appliance.storage.workers import Database

OpenDb = Callable[[], Awaitable[Database]]


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where this test's database lives: a file, or a fresh database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "data" / "parlour.db")
    return request.getfixturevalue("postgres").create_database()


@pytest.fixture
async def open_db(location: str) -> AsyncIterator[OpenDb]:
    """Opens (and migrates) this test's database; every database it opened is closed afterwards."""
    opened: list[Database] = []

    async def open_() -> Database:
        opened.append(await open_database(location))
        return opened[-1]

    yield open_
    for database in opened:
        await database.close()


@pytest.fixture
async def db(open_db: OpenDb) -> Database:
    return await open_db()
