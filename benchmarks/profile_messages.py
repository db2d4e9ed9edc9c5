"""Profile routing chat messages between local online users: the server in this process, clients in a child.

    python benchmarks/profile_messages.py --pairs 10 --messages 20000             # server CPU µs/message
    python benchmarks/profile_messages.py --pairs 10 --messages 20000 --profile 30

Pairs of accounts log in (PLAIN, bind, session, initial presence) and stay online; in the measured pass each
sender sends its share of messages to its partner, who counts them as they arrive. The server process's
CPU time over that pass is divided by the number of messages delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import logging
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from profile_login import HEADER, cpu_seconds


async def online(port: int, user: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Log one account in and leave it online with its initial presence sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    buf = b""

    async def want(token: bytes) -> None:
        nonlocal buf
        while token not in buf:
            data = await reader.read(65536)
            if not data:
                raise RuntimeError(f"connection closed waiting for {token!r}: {buf!r}")
            buf += data
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
    await want(b'id="s"')
    writer.write(b"<presence/>")
    await asyncio.sleep(0.2)
    return reader, writer


async def receive(reader: asyncio.StreamReader, count: int) -> None:
    seen = 0
    tail = b""
    while seen < count:
        data = await reader.read(65536)
        if not data:
            raise RuntimeError("connection closed while receiving")
        chunk = tail + data
        seen += chunk.count(b"<body>")
        tail = chunk[-5:]  # shorter than the token: a token cut across reads is counted once


async def client_main(port: int, pairs: int, messages: int) -> None:
    conns = [await online(port, user) for user in range(1, 2 * pairs + 1)]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    each = messages // pairs
    started = time.perf_counter()
    receivers = [asyncio.create_task(receive(conns[2 * p + 1][0], each)) for p in range(pairs)]
    for start in range(0, each, 50):  # bursts of 50 per sender, then let the server catch up
        for p in range(pairs):
            writer = conns[2 * p][1]
            to = f"user{2 * p + 2}@bench.local"
            writer.write(b"".join(
                f"<message to='{to}' type='chat' id='m{i}'><body>hello {i}</body></message>".encode()
                for i in range(start, min(start + 50, each))
            ))
        await asyncio.sleep(0.002)
    await asyncio.wait_for(asyncio.gather(*receivers), 120)
    print(f"done {time.perf_counter() - started:.3f} {each * pairs}", flush=True)
    for _, writer in conns:
        writer.close()


async def server_main(args: argparse.Namespace) -> None:
    from bench_server import bench_config, ensure_users

    from appliance.app import Parlour as Server
    from appliance.app import tune_gc_for_serving

    config = bench_config(args.state, args.port, "bench.local")
    args.state.mkdir(parents=True, exist_ok=True)
    await ensure_users(config, 2 * args.pairs, "user", "pass")
    server = Server(config)
    await server.start()
    tune_gc_for_serving()
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", "--port", str(args.port), "--pairs", str(args.pairs),
        "--messages", str(args.messages), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None and child.stdin is not None
    if await child.stdout.readline() != b"ready\n":
        raise SystemExit("client failed to log in")
    await asyncio.sleep(0.5)
    profiler = cProfile.Profile(time.thread_time_ns, 1e-9) if args.profile else None
    cpu_before = cpu_seconds()
    if profiler:
        profiler.enable()
    child.stdin.write(b"go\n")
    line = await child.stdout.readline()
    if profiler:
        profiler.disable()
    cpu = cpu_seconds() - cpu_before
    await child.wait()
    if not line.startswith(b"done"):
        raise SystemExit("client failed during the measured pass")
    elapsed, delivered = float(line.split()[1]), int(line.split()[2])
    await server.stop()
    note = " (under cProfile)" if profiler else ""
    print(
        f"{delivered} messages in {elapsed:.2f} s = {delivered / elapsed:.0f}/s; "
        f"server CPU {cpu * 1e6 / delivered:.1f} µs/message{note}"
    )
    if profiler:
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.profile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=15487)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--state", type=Path, default=Path("/tmp/profile-messages-state"))
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="run under cProfile, print top N")
    parser.add_argument("--sort", default="tottime", help="cProfile sort key (tottime, cumulative)")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    two_cpus = len(os.sched_getaffinity(0)) >= 2
    if args.client:
        if two_cpus:
            os.sched_setaffinity(0, {1})
        asyncio.run(client_main(args.port, args.pairs, args.messages))
        return
    logging.basicConfig(level=logging.ERROR)
    if two_cpus:
        os.sched_setaffinity(0, {0})
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(server_main(args))


if __name__ == "__main__":
    main()
