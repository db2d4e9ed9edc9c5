"""The database threads on both engines: group commit, isolation of failing jobs, threads, close."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import apsw
import psycopg.errors
import pytest

from appliance.storage.engine import CONSTRAINT_ERRORS, Connection
from appliance.storage.sqlite import Database as SQLite
from appliance.storage.workers import Database, DatabaseClosed
from tests.storage.conftest import OpenDb


def _make_table(conn: Connection) -> None:  # INTEGER PRIMARY KEY: a plain key on both engines
    conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")


def _insert(n: int):
    def insert(conn: Connection) -> int:
        conn.execute("INSERT INTO t (n) VALUES (?)", (n,))
        return n

    return insert


def _all(conn: Connection) -> list[int]:
    return [n for (n,) in conn.execute("SELECT n FROM t ORDER BY n")]


async def test_open_creates_parent_dirs_and_sets_pragmas(tmp_path: Path) -> None:
    db = await SQLite.open(tmp_path / "a" / "b" / "x.db")
    try:
        assert (tmp_path / "a" / "b" / "x.db").exists()
        mode = await db.read(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
        fk = await db.write(lambda c: c.execute("PRAGMA foreign_keys").fetchone()[0])
        sync = await db.write(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
        assert (mode, fk, sync) == ("wal", 1, 2)  # 2 == FULL
    finally:
        await db.close()


async def test_queued_writes_are_group_committed(db: Database) -> None:
    await db.write(_make_table)
    started, release = threading.Event(), threading.Event()

    def hold_the_writer(conn: Connection) -> None:
        started.set()
        release.wait()

    before = db.stats
    blocker = asyncio.ensure_future(db.write(hold_the_writer))
    await asyncio.to_thread(started.wait)
    writes = asyncio.gather(*(db.write(_insert(n)) for n in range(500)))
    await asyncio.sleep(0)  # every write task runs up to its queued job
    release.set()
    assert await writes == list(range(500))
    await blocker
    after = db.stats
    assert after.jobs - before.jobs == 501
    assert after.batches - before.batches == 2  # the blocker, then all 500 queued writes in one COMMIT
    assert await db.read(_all) == list(range(500))


async def test_failing_job_rolls_back_alone(db: Database) -> None:
    await db.write(_make_table)

    def half_then_fail(conn: Connection) -> None:
        conn.execute("INSERT INTO t (n) VALUES (1000)")
        raise LookupError("boom")

    jobs = [db.write(_insert(1)), db.write(half_then_fail), db.write(_insert(2)), db.write(_insert(1))]
    results = await asyncio.gather(*jobs, return_exceptions=True)
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], LookupError)
    assert isinstance(results[3], CONSTRAINT_ERRORS)  # duplicate key, in the same batch
    assert await db.read(_all) == [1, 2]


async def test_the_driver_never_runs_on_the_loop_thread(db: Database) -> None:
    loop_thread = threading.get_ident()
    write_thread = await db.write(lambda conn: threading.get_ident())
    read_threads = await asyncio.gather(*(db.read(lambda conn: threading.get_ident()) for _ in range(20)))
    assert write_thread != loop_thread
    assert loop_thread not in read_threads
    assert write_thread not in read_threads


async def test_readers_are_read_only(db: Database) -> None:
    with pytest.raises((apsw.ReadOnlyError, psycopg.errors.ReadOnlySqlTransaction)):
        await db.read(_make_table)


async def test_read_errors_reach_the_caller(db: Database) -> None:
    with pytest.raises((apsw.SQLError, psycopg.errors.UndefinedTable)):
        await db.read(lambda c: c.execute("SELECT * FROM missing").fetchall())
    assert await db.read(lambda c: c.execute("SELECT 7").fetchone()[0]) == 7  # reader still usable


async def test_close_drains_queued_writes(open_db: OpenDb) -> None:
    db = await open_db()
    await db.write(_make_table)
    pending = [asyncio.ensure_future(db.write(_insert(n))) for n in range(100)]
    await asyncio.sleep(0)  # let every write get queued
    await db.close()
    assert [p.result() for p in pending] == list(range(100))
    with pytest.raises(DatabaseClosed):
        await db.write(_insert(1))
    db = await open_db()
    assert await db.read(_all) == list(range(100))


async def test_writes_are_visible_to_readers_after_they_return(db: Database) -> None:
    await db.write(_make_table)
    for n in range(20):
        await db.write(_insert(n))
        assert (await db.read(_all))[-1] == n
