"""Storage write throughput: one write at a time vs. many concurrent writers sharing commits.

Usage: python -m benchmarks.storage_writes [--dir DIR] [--writes N] [--concurrency C]
Every write is durable (WAL, synchronous=FULL) when its await returns; the figures show how group
commit amortises the fsync.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from appliance.storage.api import ScramKeys
from appliance.storage.sqlite import Database
from appliance.storage.stores.accounts import AccountStore
from appliance.storage.stores.offline import OfflineStore

HOST = "bench.example"
KEYS = [ScramKeys(h, b"s" * 16, 4096, b"k" * 32, b"v" * 32) for h in ("SHA-1", "SHA-256", "SHA-512")]


async def sequential(offline: OfflineStore, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        await offline.push(HOST, "u0", b"<message id='%d'/>" % i, 10**9)
    return n / (time.perf_counter() - start)


async def concurrent(offline: OfflineStore, n: int, concurrency: int) -> float:
    queue = iter(range(n))

    async def worker(w: int) -> None:
        for i in queue:
            await offline.push(HOST, f"u{w % 10}", b"<message id='%d'/>" % i, 10**9)

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return n / (time.perf_counter() - start)


async def run(directory: Path, writes: int, concurrency: int) -> None:
    db = await Database.open(directory / "bench.db")
    try:
        accounts, offline = AccountStore(db), OfflineStore(db)
        start = time.perf_counter()
        await accounts.create_many(HOST, [(f"user{i:05d}", KEYS) for i in range(10_000)])
        print(f"create_many 10000 accounts (3 key sets each): {time.perf_counter() - start:.2f}s")
        await accounts.create_many(HOST, [(f"u{i}", KEYS) for i in range(10)])

        seq = await sequential(offline, min(writes, 500))
        print(f"sequential durable writes:              {seq:8.0f} writes/s")
        before = db.stats
        conc = await concurrent(offline, writes, concurrency)
        after = db.stats
        jobs, batches = after.jobs - before.jobs, after.batches - before.batches
        print(
            f"{concurrency} concurrent writers, durable writes: {conc:8.0f} writes/s "
            f"({jobs / batches:.1f} writes per commit)"
        )
        start = time.perf_counter()
        for _ in range(2000):
            await offline.count(HOST, "u1")
        print(f"sequential reads:                       {2000 / (time.perf_counter() - start):8.0f} reads/s")
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="where to put the database (default: a temp dir)")
    parser.add_argument("--writes", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args()
    if args.dir:
        asyncio.run(run(args.dir, args.writes, args.concurrency))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(run(Path(tmp), args.writes, args.concurrency))


if __name__ == "__main__":
    main()
