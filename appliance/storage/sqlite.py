"""SQLite engine on apsw: one writer thread with group commit, a few reader threads.

apsw never runs on the event loop thread. Writes are queued to the single writer thread, which runs
every queued job (up to a cap) inside one ``BEGIN IMMEDIATE … COMMIT``; each job gets its own
SAVEPOINT so a failing job rolls back alone. With WAL and ``synchronous=FULL`` each COMMIT is fsynced,
so a resolved ``write()`` is durable even on kill -9, and the fsync is shared by the whole batch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, TypeVar

import apsw

from appliance.storage.migrate import Migration, migrate
from appliance.util.files import private_file

log = logging.getLogger(__name__)

T = TypeVar("T")
READ_BATCH = 64  # jobs a reader takes from the queue before posting their results
JobFn = Callable[[apsw.Connection], Any]
_Outcome = tuple["asyncio.Future[Any]", bool, Any]


@dataclass(frozen=True, slots=True)
class WriterStats:
    """How much work the writer has committed and in how many transactions."""

    jobs: int
    batches: int


@dataclass(slots=True)
class _Job:
    fn: JobFn
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


def _connect(path: Path, busy_timeout_ms: int) -> apsw.Connection:
    conn = apsw.Connection(str(path))
    conn.set_busy_timeout(busy_timeout_ms)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _deliver(outcomes: list[_Outcome]) -> None:
    """Resolve futures on their loop; a caller that gave up (cancelled) just misses the result."""
    for future, ok, value in outcomes:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _post(jobs: list[_Job], outcomes: list[_Outcome]) -> None:
    """Hand outcomes back to each job's loop: one wake-up per loop per batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for job, outcome in zip(jobs, outcomes, strict=True):
        by_loop.setdefault(job.loop, []).append(outcome)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_deliver, items)
        except RuntimeError:  # loop closed: nobody is waiting any more
            log.debug("dropping %d database results for a closed loop", len(items))


class _Worker:
    """A thread owning one apsw connection and serving jobs from a queue until it sees ``None``."""

    def __init__(self, name: str, jobs: queue.SimpleQueue[_Job | None]) -> None:
        self.jobs = jobs
        self.started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _main(self) -> None:
        try:
            conn = self.connect()
        except BaseException as exc:
            self.started.set_exception(exc)
            self.stopped.set_result(None)
            return
        self.started.set_result(None)
        try:
            self.serve(conn)
        except BaseException:
            log.exception("database thread %s crashed", self._thread.name)
            raise
        finally:
            conn.close()
            self.stopped.set_result(None)

    def connect(self) -> apsw.Connection:
        raise NotImplementedError

    def serve(self, conn: apsw.Connection) -> None:
        raise NotImplementedError


class _Writer(_Worker):
    """The single writer: group commit with one SAVEPOINT per job."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_ms: int,
        batch_limit: int,
        migrations: Traversable | None,
        store_migrations: Sequence[Migration],
    ) -> None:
        super().__init__("parlour-db-writer", queue.SimpleQueue())
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._batch_limit = batch_limit
        self._migrations = migrations
        self._store_migrations = store_migrations
        self.job_count = 0
        self.batch_count = 0

    def connect(self) -> apsw.Connection:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # Made 0600 before SQLite opens it: SQLite gives its -wal and -shm files the database's mode.
        private_file(self._path)
        for companion in ("-wal", "-shm", "-journal"):  # left by an older version with the umask's mode
            private_file(Path(f"{self._path}{companion}"), create=False)
        conn = _connect(self._path, self._busy_timeout_ms)
        try:
            conn.execute("PRAGMA journal_mode = WAL").fetchall()
            conn.execute("PRAGMA synchronous = FULL")
            migrate(conn, self._path, self._migrations, self._store_migrations)
        except BaseException:
            conn.close()
            raise
        return conn

    def serve(self, conn: apsw.Connection) -> None:
        while True:
            first = self.jobs.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._batch_limit:
                try:
                    job = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                batch.append(job)
            outcomes = self._commit(conn, batch)
            self.job_count += len(batch)
            self.batch_count += 1
            _post(batch, outcomes)
            if stop:
                return

    def _commit(self, conn: apsw.Connection, batch: list[_Job]) -> list[_Outcome]:
        outcomes: list[_Outcome] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in batch:
                conn.execute("SAVEPOINT job")
                try:
                    result = job.fn(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    outcomes.append((job.future, False, exc))
                else:
                    conn.execute("RELEASE job")
                    outcomes.append((job.future, True, result))
            conn.execute("COMMIT")
        except Exception as exc:
            # BEGIN or COMMIT itself failed (disk full, I/O error): nothing of the batch is durable.
            log.error("database batch of %d writes failed: %s", len(batch), exc)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [(job.future, False, exc) for job in batch]
        return outcomes


class _Reader(_Worker):
    """A read-only connection; each job runs in its own read transaction (one consistent snapshot)."""

    def __init__(self, index: int, path: Path, jobs: queue.SimpleQueue[_Job | None], busy_timeout_ms: int):
        super().__init__(f"parlour-db-reader-{index}", jobs)
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms

    def connect(self) -> apsw.Connection:
        conn = _connect(self._path, self._busy_timeout_ms)
        conn.execute("PRAGMA query_only = ON")
        return conn

    def serve(self, conn: apsw.Connection) -> None:
        """Take every job already queued (up to READ_BATCH), then hand the results back with one
        wake-up of the loop: under load the thread switches and wake-ups, not SQLite, cost the most."""
        while True:
            job = self.jobs.get()
            batch: list[_Job] = []
            while job is not None:
                batch.append(job)
                if len(batch) == READ_BATCH:
                    break
                try:
                    job = self.jobs.get_nowait()
                except queue.Empty:
                    break
            if batch:
                _post(batch, [self._run(conn, queued) for queued in batch])
            if job is None:
                self.jobs.put(None)  # let the sibling readers see the stop too
                return

    @staticmethod
    def _run(conn: apsw.Connection, job: _Job) -> _Outcome:
        """One job in its own read transaction (one consistent snapshot)."""
        try:
            conn.execute("BEGIN")
            try:
                return (job.future, True, job.fn(conn))
            finally:
                if conn.in_transaction:  # a read transaction: ROLLBACK just ends the snapshot
                    conn.execute("ROLLBACK")
        except Exception as exc:
            return (job.future, False, exc)


class DatabaseClosed(RuntimeError):
    """Raised by ``write``/``read`` after ``close()``."""


class Database:
    """An SQLite database file served by one writer thread and a few reader threads.

    Call ``write``/``read`` from the event loop only. ``fn`` receives the thread's apsw connection and
    must not keep cursors or the connection beyond its return.
    """

    def __init__(
        self, path: Path, writer: _Writer, readers: list[_Reader], read_jobs: queue.SimpleQueue[_Job | None]
    ):
        self.path = path
        self._writer = writer
        self._readers = readers
        self._read_jobs = read_jobs
        self._closed = False

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
        if readers < 1 or batch_limit < 1:
            raise ValueError("readers and batch_limit must be at least 1")
        db_path = Path(path)
        writer = _Writer(
            db_path, busy_timeout_ms=busy_timeout_ms, batch_limit=batch_limit, migrations=migrations,
            store_migrations=store_migrations,
        )
        writer.start()
        await asyncio.wrap_future(writer.started)
        read_jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        pool = [_Reader(i, db_path, read_jobs, busy_timeout_ms) for i in range(readers)]
        for reader in pool:
            reader.start()
        db = cls(db_path, writer, pool, read_jobs)
        try:
            for reader in pool:
                await asyncio.wrap_future(reader.started)
        except BaseException:
            await db.close()
            raise
        log.info("database %s open (%d readers)", db_path, readers)
        return db

    async def write(self, fn: Callable[[apsw.Connection], T]) -> T:
        """Run ``fn`` on the writer thread; returns after the COMMIT that includes it (durable)."""
        return await self._submit(self._writer.jobs, fn)

    async def read(self, fn: Callable[[apsw.Connection], T]) -> T:
        """Run ``fn`` on a reader thread inside one read transaction."""
        return await self._submit(self._read_jobs, fn)

    async def _submit(self, jobs: queue.SimpleQueue[_Job | None], fn: Callable[[apsw.Connection], T]) -> T:
        if self._closed:
            raise DatabaseClosed(f"database {self.path} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        jobs.put(_Job(fn, loop, future))
        return await future

    @property
    def stats(self) -> WriterStats:
        """Committed write jobs and the number of transactions they took."""
        return WriterStats(jobs=self._writer.job_count, batches=self._writer.batch_count)

    async def close(self) -> None:
        """Finish every queued write and read, then close all connections."""
        if self._closed:
            return
        self._closed = True
        self._writer.jobs.put(None)
        self._read_jobs.put(None)
        waits = [self._writer.stopped, *(r.stopped for r in self._readers)]
        await asyncio.gather(*(asyncio.wrap_future(w) for w in waits))
        log.info("database %s closed", self.path)
