"""Routing alone: µs of CPU per chat message through `Router.route`, from a bound sender to its partner.

    python benchmarks/route_messages.py --messages 200000

A bench server (the modules of `bench_server.py`) starts in this process, `--pairs` pairs of stand-in
sessions (a JID, available, priority 0; what they are sent is counted and dropped) are put in its session
directory, and each sender's chat message (parsed once, as the stream parser hands it over) is routed to
its partner's bare JID. No sockets, no parser, no event loop wake-ups: the addressing checks, the hook
chains (blocking, carbons, delivery) and the serialization for the recipient, measured in a tight loop so
that the figure holds still on a shared machine. `--carbons` turns carbons on for every session.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lxml import etree

sys.path.insert(0, str(Path(__file__).parent))

from bench_server import bench_config

from appliance.app import Parlour
from appliance.modules.carbons import CarbonsService
from appliance.xmpp.jid import JID


class StandIn:
    """What the router and the modules ask of a bound client session; output is only counted."""

    def __init__(self, jid: JID) -> None:
        self.jid = jid
        self.available = True
        self.priority = 0
        self.presence: Any = None
        self.interested = True
        self.directed: set[JID] = set()
        self.client = ""
        self.sent = 0

    def send(self, element: etree._Element) -> None:
        self.send_bytes(etree.tostring(element))

    def send_bytes(self, data: bytes, element: etree._Element | None = None) -> None:
        self.sent += 1

    def close(self, condition: str | None = None, text: str | None = None) -> None:
        self.available = False


def run_to_end(coro: Any) -> None:
    """Drive a routing coroutine that never needs to wait (everything it reads is in memory)."""
    try:
        coro.send(None)
    except StopIteration:
        return
    raise RuntimeError("routing waited: the figure would include the event loop")


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as state:
        server = Parlour(bench_config(Path(state), 0, "bench.local"))
        await server.start()
        try:
            core = server.core
            assert core is not None
            router, directory = core.router, core.sessions
            pairs = []
            for p in range(args.pairs):
                sender = StandIn(JID.parse(f"user{2 * p + 1}@bench.local/bench"))
                receiver = StandIn(JID.parse(f"user{2 * p + 2}@bench.local/bench"))
                directory.mirror(sender)
                directory.mirror(receiver)
                message = etree.fromstring(
                    f"<message xmlns='jabber:client' to='user{2 * p + 2}@bench.local' type='chat' id='m'"
                    f" from='{sender.jid}'><body>hello, this is a chat message</body></message>"
                )
                pairs.append((sender, receiver, message))
            if args.carbons:
                carbons = core.hosts["bench.local"].services[CarbonsService]
                for sender, receiver, _message in pairs:
                    carbons.enable(sender)
                    carbons.enable(receiver)
            route = router.route
            for sender, _receiver, message in pairs:  # warm the caches (blocklists, JIDs)
                await route(message, origin=sender)
            rounds = max(1, args.messages // args.pairs)
            for _attempt in range(args.repeat):
                started = time.process_time()
                for _round in range(rounds):
                    for sender, _receiver, message in pairs:
                        run_to_end(route(message, origin=sender))
                cpu = time.process_time() - started
                print(f"{rounds * args.pairs} messages routed: {cpu * 1e6 / (rounds * args.pairs):.2f} µs each")
            assert all(r.sent > rounds for _s, r, _m in pairs), "a message was not delivered"
        finally:
            await server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3, help="measured passes (the figures of each are printed)")
    parser.add_argument("--carbons", action="store_true", help="carbons enabled on every session")
    asyncio.run(main(parser.parse_args()))
