"""Profile the c2s login path: the server in this process, the clients in a child process.

    python benchmarks/profile_login.py --logins 2000              # server CPU ms/login, no profiler
    python benchmarks/profile_login.py --logins 2000 --profile 30 # plus cProfile's top 30 by own time

Each login is: connect, stream header, SASL PLAIN, restart, bind, session, initial presence, close.
Like the tsung bench, the client warms up with 50 logins, then the measured pass logs in accounts that
have not logged in before (so each PLAIN check pays its PBKDF2 derivation); --warm measures the warm-up
accounts again instead (the PLAIN cache answers: what the rest of the login path costs). The server
process's CPU time (all threads, from getrusage) over the measured pass is divided by the number of logins,
also shown per thread. The server is pinned to CPU 0 and the client to CPU 1 when there are two CPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import logging
import os
import pstats
import resource
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

HEADER = (
    b"<?xml version='1.0'?><stream:stream to='bench.local' xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
)
WARM_UP = 50


async def bound(port: int, user: int) -> tuple[asyncio.StreamWriter, Callable[[bytes], Awaitable[None]]]:
    """Connect, SASL PLAIN as user<N>/pass, bind and start the session; returns the writer and a reader
    that waits for a token and drops what came before it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    buf = b""

    async def want(*tokens: bytes) -> None:
        """Wait for the first of `tokens` (alternatives: servers quote attributes differently)."""
        nonlocal buf
        while not (found := [t for t in tokens if t in buf]):
            data = await reader.read(65536)
            if not data:
                raise RuntimeError(f"connection closed waiting for {tokens!r}: {buf!r}")
            buf += data
        token = min(found, key=buf.index)
        buf = buf[buf.index(token) + len(token) :]

    writer.write(HEADER)
    await want(b"</stream:features>")
    cred = base64.b64encode(f"\0user{user}\0pass".encode()).decode()
    writer.write(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{cred}</auth>".encode())
    await want(b"<success")
    writer.write(HEADER)
    await want(b"</stream:features>")
    writer.write(
        b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>x</resource></bind></iq>"
    )
    await want(b"</iq>")
    writer.write(b"<iq type='set' id='s'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
    await want(b'id="s"', b"id='s'")
    return writer, want


async def login(port: int, user: int) -> None:
    """One full login and logout over a raw socket."""
    writer, want = await bound(port, user)
    writer.write(b"<presence/></stream:stream>")
    await want(b"</stream:stream>")
    writer.close()


async def client_pass(port: int, users: range, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one(user: int) -> None:
        async with sem:
            await asyncio.wait_for(login(port, user), 10)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in users))
    return time.perf_counter() - started


async def client_main(port: int, logins: int, concurrency: int, warm: bool) -> None:
    """Child process: warm-up pass, wait for 'go' on stdin, measured pass."""
    warm_users = range(1, (logins if warm else WARM_UP) + 1)
    await client_pass(port, warm_users, concurrency)
    print("warm", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    users = warm_users if warm else range(WARM_UP + 1, WARM_UP + logins + 1)
    elapsed = await client_pass(port, users, concurrency)
    print(f"done {elapsed:.3f}", flush=True)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far per thread name (Linux /proc; empty elsewhere)."""
    totals: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return totals
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    for tid in tasks:
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        name = names.get(int(tid), "other").rstrip("0123456789_")  # asyncio_0, asyncio_1 ... -> asyncio
        totals[name] = totals.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return totals


async def measured_pass(
    child: asyncio.subprocess.Process, *, profile: bool
) -> tuple[bytes, float, cProfile.Profile | None]:
    """Tell the client to go and wait for its closing line; returns it, the server's CPU seconds meanwhile
    and the profiler that ran (thread CPU time, not wall time: other threads share the core)."""
    assert child.stdout is not None and child.stdin is not None
    profiler = cProfile.Profile(time.thread_time_ns, 1e-9) if profile else None
    cpu_before = cpu_seconds()
    if profiler:
        profiler.enable()
    child.stdin.write(b"go\n")
    line = await child.stdout.readline()
    if profiler:
        profiler.disable()
    return line, cpu_seconds() - cpu_before, profiler


async def server_main(args: argparse.Namespace) -> None:
    from bench_server import bench_config, ensure_users

    from appliance.app import Parlour as Server
    from appliance.app import tune_gc_for_serving

    config = bench_config(args.state, args.port, "bench.local")
    args.state.mkdir(parents=True, exist_ok=True)
    await ensure_users(config, args.logins + WARM_UP, "user", "pass")
    server = Server(config)
    await server.start()
    tune_gc_for_serving()  # as `parlour run` does
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", "--port", str(args.port), "--logins", str(args.logins),
        "--concurrency", str(args.concurrency), *(["--warm"] if args.warm else []),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None and child.stdin is not None
    if await child.stdout.readline() != b"warm\n":
        raise SystemExit("client failed during the warm pass")
    await asyncio.sleep(0.5)  # let logouts of the warm pass settle
    # thread CPU time, not wall time: the database and PBKDF2 threads share the core with the event loop
    threads_before = thread_cpu()
    line, cpu, profiler = await measured_pass(child, profile=bool(args.profile))
    threads = {name: spent - threads_before.get(name, 0.0) for name, spent in thread_cpu().items()}
    await child.wait()
    if not line.startswith(b"done"):
        raise SystemExit("client failed during the measured pass")
    elapsed = float(line.split()[1])
    await server.stop()
    note = " (under cProfile)" if profiler else ""
    print(
        f"{args.logins} logins in {elapsed:.2f} s = {args.logins / elapsed:.0f}/s; "
        f"server CPU {cpu * 1000 / args.logins:.3f} ms/login{note}"
    )
    per_thread = ", ".join(
        f"{name} {spent * 1000 / args.logins:.2f}" for name, spent in sorted(threads.items(), key=lambda t: -t[1])
        if spent > 0
    )
    print(f"  by thread (ms/login): {per_thread}")
    if profiler:
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.profile)


def main() -> None:
    parser = profiling_options(__doc__, port=15488, state=Path("/tmp/profile-login-state"), logins=2000, concurrency=20)
    parser.add_argument("--warm", action="store_true", help="measure the warm-up accounts again (cached PLAIN)")
    args = parser.parse_args()
    run_pinned(
        lambda: client_main(args.port, args.logins, args.concurrency, args.warm), lambda: server_main(args),
        client=args.client, uvloop=not args.no_uvloop,
    )


def profiling_options(doc: str | None, *, port: int, state: Path, **counts: int) -> argparse.ArgumentParser:
    """The options both profiling scripts take (port, state folder, cProfile, event loop, client side) and
    the script's own counts, --NAME N each."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in counts.items():
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--state", type=Path, default=state)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="run under cProfile, print top N")
    parser.add_argument("--sort", default="tottime", help="cProfile sort key (tottime, cumulative)")
    parser.add_argument("--no-uvloop", action="store_true")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    return parser


def run_pinned(
    client_main: Callable[[], Coroutine[Any, Any, None]], server_main: Callable[[], Coroutine[Any, Any, None]],
    *, client: bool, uvloop: bool,
) -> None:
    """Run the client side on CPU 1 or the server side on CPU 0 (when there are two CPUs)."""
    # The machine's CPUs, not this process's: the client is started by the server, pinned to CPU 0 by then.
    two_cpus = (os.cpu_count() or 1) >= 2
    if client:
        if two_cpus:
            os.sched_setaffinity(0, {1})
        asyncio.run(client_main())
        return
    logging.basicConfig(level=logging.ERROR)
    if two_cpus:
        os.sched_setaffinity(0, {0})
    if uvloop:
        try:
            import uvloop as loops

            loops.install()
        except ImportError:
            pass
    asyncio.run(server_main())

if __name__ == "__main__":
    main()
