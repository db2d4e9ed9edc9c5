"""CPU of two federating Parlours per relayed message under ping-pong load, for A/B comparisons of s2s changes.

    sudo .venv/bin/python benchmarks/s2s_pingpong.py --pairs 10 --messages 6000 [--tree /path/to/other/checkout]

The servers start as in s2s_bench.py (network namespace, own DNS, throwaway CA, s2s over TLS), from this
checkout or from `--tree` (another checkout of Parlour: its server code runs, this venv's packages). Each of
`--pairs` user pairs sends one message across, waits for it, and sends one back, over and over: at most
`--pairs` messages are in flight, so the servers handle them one wake-up at a time as at a steady paced rate,
and unlike a paced tsung run the figure moves little with how busy the machine is (no batching under
contention). Prints messages/s, both servers' user + system CPU per delivered message, the median latency and
the load average. Needs root. Figures only, no assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=10, help="user pairs ping-ponging at once (at most 500)")
    parser.add_argument("--messages", type=int, default=6000, help="messages in all (at most 200000)")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the Parlour checkout whose servers run")
    parser.add_argument("--inside", dest="namespace", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.pairs = max(1, min(args.pairs, 500))
    args.messages = max(2 * args.pairs, min(args.messages, 200_000))
    args.tree = args.tree.resolve()
    return args


ARGS = parse() if __name__ == "__main__" else None
sys.path.insert(0, str(ARGS.tree if ARGS is not None else ROOT))

from benchmarks.s2s_bench import PASSWORD, Sender, cpu_seconds, federating, in_namespace  # noqa: E402


async def ping_pong(one: Sender, other: Sender, rounds: int, latencies: list[float]) -> None:
    for _ in range(rounds):
        for sender, receiver in ((one, other), (other, one)):
            sender.send_to(f"{receiver.user}@{receiver.domain}", f"{time.perf_counter():.6f}")
            await asyncio.wait_for(receiver.receive_stamps(1, latencies), 30)


async def bench(base: Path, ns: str, pairs: int, messages: int) -> str:
    async with federating("parlour", base, ns, pairs) as (a, b):
        couples = [(Sender(f"user{i}", a.domain), Sender(f"user{i}", b.domain)) for i in range(1, pairs + 1)]
        for one, other in couples:
            await one.login(a.c2s[1], PASSWORD, a.c2s[0])
            await other.login(b.c2s[1], PASSWORD, b.c2s[0])
        latencies: list[float] = []
        await asyncio.gather(*(ping_pong(one, other, 20, latencies) for one, other in couples))  # warm-up
        latencies.clear()
        groups = [r.process.pid for r in (a, b) if r.process is not None]
        cpu, started = sum(cpu_seconds(g) for g in groups), time.perf_counter()
        await asyncio.gather(*(ping_pong(one, other, messages // (2 * pairs), latencies) for one, other in couples))
        cpu, elapsed = sum(cpu_seconds(g) for g in groups) - cpu, time.perf_counter() - started
        for couple in couples:
            for client in couple:
                client.close()
    n = len(latencies)
    latencies.sort()
    return (f"{n} messages, {pairs} pairs: {n / elapsed:.0f} msg/s, CPU {cpu / n * 1e6:.1f} µs/msg, "
            f"median {latencies[n // 2] * 1000:.2f} ms, load average {os.getloadavg()[0]:.1f} ({ARGS.tree})")


def main() -> int:
    assert ARGS is not None
    if ARGS.namespace:
        base = Path(tempfile.mkdtemp(prefix="s2s-pingpong-"))
        try:
            print(asyncio.run(asyncio.wait_for(bench(base / "parlour", ARGS.namespace, ARGS.pairs, ARGS.messages),
                                               900)), flush=True)
        finally:
            shutil.rmtree(base, ignore_errors=True)
        return 0
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    return in_namespace([sys.executable, __file__, "--pairs", str(ARGS.pairs), "--messages", str(ARGS.messages),
                         "--tree", str(ARGS.tree)])


if __name__ == "__main__":
    raise SystemExit(main())
