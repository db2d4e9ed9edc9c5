"""Profile routing chat messages between local online users: the server in this process, clients in a child.

    python benchmarks/profile_messages.py --pairs 10 --messages 20000             # server CPU µs/message
    python benchmarks/profile_messages.py --pairs 10 --messages 20000 --profile 30
    python benchmarks/profile_messages.py --pairs 500 --messages 40000 --burst 1 --rate 2000    # like tsung
    python benchmarks/profile_messages.py ... --cut parse      # only parse, stamp, serialize (cut_short)

Pairs of accounts log in (PLAIN, bind, session, initial presence) and stay online; in the measured pass each
sender sends its share of messages to its partner, who counts them as they arrive. The server process's
CPU time over that pass is divided by the number of messages delivered.

Senders write bursts of `--burst` messages (50 by default), then let the server catch up. With `--burst 1` and
many pairs every message arrives in a read of its own and leaves in a write of its own, as in the tsung
message run (`benchmarks/profile_tsung.sh`), so the per-read and per-write costs count in full; `--rate R`
paces the senders to R messages/s in all, so the server also wakes up for a few messages at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import pstats
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from profile_login import bound, measured_pass, profiling_options, run_pinned


async def online(port: int, user: int) -> tuple[asyncio.StreamWriter, Callable[[bytes], Awaitable[None]]]:
    """Log one account in and leave it online with its initial presence sent."""
    writer, want = await bound(port, user)
    writer.write(b"<presence/>")
    await asyncio.sleep(0.2)
    return writer, want


async def receive(want: Callable[[bytes], Awaitable[None]], count: int) -> None:
    for _ in range(count):
        await want(b"<body>")


async def client_main(port: int, pairs: int, messages: int, burst: int, rate: int) -> None:
    users = range(1, 2 * pairs + 1)
    conns = []
    for start in range(0, len(users), 50):  # 50 logins at a time: many pairs log in quickly, PBKDF2 paces them
        conns += await asyncio.gather(*(online(port, user) for user in users[start : start + 50]))
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    each = messages // pairs
    started = time.perf_counter()
    receivers = [asyncio.create_task(receive(conns[2 * p + 1][1], each)) for p in range(pairs)]
    sent = 0
    for start in range(0, each, burst):  # a burst per sender, then let the server catch up
        for p in range(pairs):
            writer = conns[2 * p][0]
            to = f"user{2 * p + 2}@bench.local"
            writer.write(b"".join(
                f"<message to='{to}' type='chat' id='m{i}'><body>hello {i}</body></message>".encode()
                for i in range(start, min(start + burst, each))
            ))
            sent += burst
            ahead = started + sent / rate - time.perf_counter() if rate else 0.0
            if ahead > 0.001:  # paced: the server wakes up for a few messages at a time, as under tsung
                await asyncio.sleep(ahead)
        if not rate:
            await asyncio.sleep(0.002)
    await asyncio.wait_for(asyncio.gather(*receivers), 120)
    print(f"done {time.perf_counter() - started:.3f} {each * pairs}", flush=True)
    for writer, _want in conns:
        writer.close()


async def relay_main(args: argparse.Namespace) -> None:
    """Serve the bare relay (the tsung harness's floor) in this process instead of Parlour."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("relay", args.relay)
    assert spec is not None and spec.loader is not None
    relay = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(relay)
    server = await asyncio.get_running_loop().create_server(relay.Relay, "127.0.0.1", args.port, backlog=4096)
    await drive(args, server.close)


def cut_short(stage: str) -> None:
    """Where the CPU goes, by leaving work out (a measurement device, never a server): a read that is one
    whole <message/> from a bound client skips the input shaping, the stream machine and the session
    driver, and then
      parse:  is only parsed (Parlour's parser), stamped with the sender, looked up, serialized and written
              (the lxml floor inside this process; benchmarks/relay_lxml.py is the same floor under tsung);
      route:  is parsed, stamped and handed to the real router (hooks, delivery, serializing, writing).
    Anything else (logins, presence, a message in several reads) takes the whole path."""
    from lxml import etree

    from appliance.net import tcp
    from appliance.xmpp.jid import JID

    whole_path = tcp.XmppTcpProtocol.data_received

    def data_received(self: tcp.XmppTcpProtocol, data: bytes) -> None:
        session = self.session
        me = getattr(getattr(session, "machine", None), "_jid_text", None)
        element = self.parser._whole_stanza(data) if me and data.startswith(b"<message") else None
        if element is None:
            whole_path(self, data)
            return
        output = tcp._READ_OUTPUT
        output.reading = True
        try:
            element.set("from", me)
            if stage == "route":
                rest = session.services.router.route_now(element, origin=session)
                if rest is not None:  # a blocklist not in memory yet: wait for it in a task
                    asyncio.get_running_loop().create_task(rest)  # type: ignore[arg-type]
                return
            to = session.services.sessions.message_targets(JID.parse(element.get("to", "")).bare())
            if to:
                to[0].transport.write(etree.tostring(element))
        finally:
            output.send()

    tcp.XmppTcpProtocol.data_received = data_received  # type: ignore[method-assign]


async def server_main(args: argparse.Namespace) -> None:
    from bench_server import bench_config, ensure_users

    from appliance.app import Parlour as Server
    from appliance.app import tune_gc_for_serving

    if args.cut:
        cut_short(args.cut)
    config = bench_config(args.state, args.port, "bench.local")
    args.state.mkdir(parents=True, exist_ok=True)
    await ensure_users(config, 2 * args.pairs, "user", "pass")
    server = Server(config)
    await server.start()
    tune_gc_for_serving()
    await drive(args, server.stop)


async def drive(args: argparse.Namespace, stop: Callable[[], object]) -> None:
    """Start the client process, measure the server's CPU over its measured pass and print the figures."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", "--port", str(args.port), "--pairs", str(args.pairs),
        "--messages", str(args.messages), "--burst", str(args.burst), "--rate", str(args.rate),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None and child.stdin is not None
    if await child.stdout.readline() != b"ready\n":
        raise SystemExit("client failed to log in")
    await asyncio.sleep(0.5)
    line, cpu, profiler = await measured_pass(child, profile=bool(args.profile))
    await child.wait()
    if not line.startswith(b"done"):
        raise SystemExit("client failed during the measured pass")
    elapsed, delivered = float(line.split()[1]), int(line.split()[2])
    stopped = stop()
    if asyncio.iscoroutine(stopped):
        await stopped
    note = " (under cProfile)" if profiler else ""
    print(
        f"{delivered} messages in {elapsed:.2f} s = {delivered / elapsed:.0f}/s; "
        f"server CPU {cpu * 1e6 / delivered:.1f} µs/message{note}"
    )
    if profiler:
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.profile)


def main() -> None:
    state = Path("/tmp/profile-messages-state")
    parser = profiling_options(__doc__, port=15487, state=state, pairs=10, messages=20000, burst=50, rate=0)
    parser.add_argument("--relay", type=Path, metavar="RELAY_PY", help="measure this bare relay instead of Parlour")
    parser.add_argument("--cut", choices=("parse", "route"), help="leave work out to see what it costs (cut_short)")
    args = parser.parse_args()
    run_pinned(
        lambda: client_main(args.port, args.pairs, args.messages, args.burst, args.rate),
        lambda: relay_main(args) if args.relay else server_main(args),
        client=args.client, uvloop=not args.no_uvloop,
    )

if __name__ == "__main__":
    main()
