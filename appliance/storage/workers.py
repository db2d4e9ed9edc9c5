"""Database threads shared by both engines: one writer with group commit, a few readers.

No database driver ever runs on the event loop thread. Writes are queued to the single writer thread,
which runs every queued job (up to a cap) inside one transaction, each job in its own SAVEPOINT so a
failing job rolls back alone; a ``write()`` resolves after the COMMIT that includes it, so acknowledged
means committed, and the commit's flush is shared by the whole batch. Readers run each job in its own
read transaction (one consistent snapshot). The engine modules (sqlite.py, postgres.py) say how to
connect and how a transaction begins.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from appliance.storage.engine import Connection

log = logging.getLogger(__name__)

T = TypeVar("T")
READ_BATCH = 64  # jobs a reader takes from the queue before posting their results
JobFn = Callable[[Any], Any]
_Outcome = tuple["asyncio.Future[Any]", bool, Any]


class Session(Connection, Protocol):
    """A connection the threads drive: transaction state and closing besides the store methods."""

    @property
    def in_transaction(self) -> bool: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Transactions:
    """How an engine opens a connection and begins a transaction for the writer and for readers."""

    connect_writer: Callable[[], Session]
    connect_reader: Callable[[], Session]
    begin_write: str
    begin_read: str


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
    """A thread owning one connection and serving jobs from a queue until it sees ``None``."""

    def __init__(self, name: str, jobs: queue.SimpleQueue[_Job | None], connect: Callable[[], Session]) -> None:
        self.jobs = jobs
        self.started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._connect = connect
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _main(self) -> None:
        try:
            conn = self._connect()
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

    def serve(self, conn: Session) -> None:
        raise NotImplementedError


class _Writer(_Worker):
    """The single writer: group commit with one SAVEPOINT per job."""

    def __init__(self, connect: Callable[[], Session], begin: str, batch_limit: int) -> None:
        super().__init__("parlour-db-writer", queue.SimpleQueue(), connect)
        self._begin = begin
        self._batch_limit = batch_limit
        self.job_count = 0
        self.batch_count = 0

    def serve(self, conn: Session) -> None:
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

    def _commit(self, conn: Session, batch: list[_Job]) -> list[_Outcome]:
        outcomes: list[_Outcome] = []
        try:
            conn.execute(self._begin)
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
            # BEGIN or COMMIT itself failed (disk full, I/O error, server gone): nothing of the batch
            # is committed, and every caller hears so.
            log.error("database batch of %d writes failed: %s", len(batch), exc)
            _end(conn)
            return [(job.future, False, exc) for job in batch]
        return outcomes


def _end(conn: Session) -> None:
    """Roll back whatever transaction a failure left open; a dead connection has none to end."""
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except Exception as exc:
        log.warning("database rollback failed: %s", exc)


class _Reader(_Worker):
    """A read-only connection; each job runs in its own read transaction (one consistent snapshot)."""

    def __init__(self, index: int, jobs: queue.SimpleQueue[_Job | None], connect: Callable[[], Session],
                 begin: str) -> None:
        super().__init__(f"parlour-db-reader-{index}", jobs, connect)
        self._begin = begin

    def serve(self, conn: Session) -> None:
        """Take every job already queued (up to READ_BATCH), then hand the results back with one
        wake-up of the loop: under load the thread switches and wake-ups, not the database, cost the most."""
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

    def _run(self, conn: Session, job: _Job) -> _Outcome:
        """One job in its own read transaction (one consistent snapshot)."""
        try:
            conn.execute(self._begin)
            try:
                return (job.future, True, job.fn(conn))
            finally:
                _end(conn)  # a read transaction: ROLLBACK just ends the snapshot
        except Exception as exc:
            return (job.future, False, exc)


class DatabaseClosed(RuntimeError):
    """Raised by ``write``/``read`` after ``close()``."""


class Database:
    """A database served by one writer thread and a few reader threads, whatever the engine.

    Call ``write``/``read`` from the event loop only. ``fn`` receives the thread's connection and
    must not keep cursors or the connection beyond its return.
    """

    def __init__(self, name: str, writer: _Writer, readers: list[_Reader],
                 read_jobs: queue.SimpleQueue[_Job | None]) -> None:
        self.name = name
        self._writer = writer
        self._readers = readers
        self._read_jobs = read_jobs
        self._closed = False

    @classmethod
    async def start(cls, name: str, transactions: Transactions, *, readers: int, batch_limit: int) -> Database:
        """Connect the writer (which migrates), then the readers; any failure closes what was started."""
        if readers < 1 or batch_limit < 1:
            raise ValueError("readers and batch_limit must be at least 1")
        writer = _Writer(transactions.connect_writer, transactions.begin_write, batch_limit)
        writer.start()
        await asyncio.wrap_future(writer.started)
        read_jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        pool = [_Reader(i, read_jobs, transactions.connect_reader, transactions.begin_read)
                for i in range(readers)]
        for reader in pool:
            reader.start()
        db = cls(name, writer, pool, read_jobs)
        try:
            for reader in pool:
                await asyncio.wrap_future(reader.started)
        except BaseException:
            await db.close()
            raise
        log.info("database %s open (%d readers)", name, readers)
        return db

    async def write(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn`` on the writer thread; returns after the COMMIT that includes it (durable)."""
        return await self._submit(self._writer.jobs, fn)

    async def read(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn`` on a reader thread inside one read transaction."""
        return await self._submit(self._read_jobs, fn)

    async def _submit(self, jobs: queue.SimpleQueue[_Job | None], fn: Callable[[Any], T]) -> T:
        if self._closed:
            raise DatabaseClosed(f"database {self.name} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        jobs.put(_Job(fn, loop, future))
        return await future

    async def size(self) -> int:
        """Bytes the database takes on disk; each engine says how to measure it."""
        raise NotImplementedError

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
        log.info("database %s closed", self.name)
