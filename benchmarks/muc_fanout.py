"""MUC fan-out: one room of N occupants, the time from sending one groupchat message to its arrival at
every occupant (median and p95 over M messages).

    python benchmarks/muc_fanout.py --occupants 500 --messages 30

The server runs in its own process (benchmarks/bench_server.py: PLAIN without TLS on a loopback port);
the occupants are raw asyncio clients over real sockets, logged in a bounded number at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOMAIN = "bench.local"
PASSWORD = "pass"
MARK = re.compile(rb'id="fanout-(\d+)"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class Occupant:
    """A minimal client: log in, join the room, then note when each numbered message arrives."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter
        self.seen: dict[int, float] = {}
        self.got: dict[int, asyncio.Event] = {}
        self.buffer = b""

    async def expect(self, pattern: bytes, timeout: float = 30) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                while pattern not in self.buffer:
                    chunk = await self.reader.read(65536)
                    if not chunk:
                        raise ConnectionError(f"{self.user}: closed while waiting for {pattern!r}")
                    self.buffer += chunk
        except TimeoutError:
            raise TimeoutError(f"{self.user}: no {pattern!r} in {self.buffer[-500:]!r}") from None
        head, _, self.buffer = self.buffer.partition(pattern)
        return head

    def send(self, text: str) -> None:
        self.writer.write(text.encode())

    def open_stream(self) -> None:
        self.send(f"<?xml version='1.0'?><stream:stream to='{DOMAIN}' xmlns='jabber:client' "
                  "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")

    async def login(self, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.open_stream()
        await self.expect(b"</stream:features>")
        token = base64.b64encode(f"\0{self.user}\0{PASSWORD}".encode()).decode()
        self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>")
        await self.expect(b"<success")
        self.open_stream()
        await self.expect(b"</stream:features>")
        self.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  "<resource>bench</resource></bind></iq>")
        await self.expect(b"</iq>")

    async def join(self, room: str, *, create: bool = False) -> None:
        self.send(f"<presence to='{room}/{self.user}'><x xmlns='http://jabber.org/protocol/muc'>"
                  "<history maxstanzas='0'/></x></presence>")
        await self.expect(b"<subject")  # the subject comes last in a join
        if create:
            self.send(f"<iq type='set' id='cfg' to='{room}'><query xmlns='http://jabber.org/protocol/muc#owner'>"
                      "<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_maxusers'><value>1000</value>"
                      "</field></x></query></iq>")
            await self.expect(b"id=\"cfg\"")

    async def listen(self) -> None:
        """Read until closed, stamping the arrival of every numbered message."""
        tail = self.buffer
        while True:
            chunk = await self.reader.read(262144)
            if not chunk:
                return
            now = time.perf_counter()
            data = tail + chunk
            for match in MARK.finditer(data):
                number = int(match[1])
                if number not in self.seen:
                    self.seen[number] = now
                    event = self.got.get(number)
                    if event is not None:
                        event.set()
            tail = data[-64:]


async def run(occupants: int, messages: int, concurrency: int, port: int) -> list[float]:
    room = f"fanout@conference.{DOMAIN}"
    clients = [Occupant(f"user{i}") for i in range(1, occupants + 1)]
    limit = asyncio.Semaphore(concurrency)
    started = time.perf_counter()

    async def enter(client: Occupant, create: bool = False) -> None:
        async with limit:
            await client.login(port)
            await client.join(room, create=create)

    await enter(clients[0], create=True)
    await asyncio.gather(*(enter(c) for c in clients[1:]))
    print(f"{occupants} occupants joined in {time.perf_counter() - started:.1f} s", flush=True)
    listeners = [asyncio.create_task(c.listen()) for c in clients]
    await asyncio.sleep(1.0)  # let the join presences drain
    sender = clients[0]
    spans: list[float] = []
    for number in range(messages):
        events = [c.got.setdefault(number, asyncio.Event()) for c in clients]
        sent = time.perf_counter()
        sender.send(f"<message to='{room}' type='groupchat' id='fanout-{number}'><body>message {number} "
                    f"{'x' * 64}</body></message>")
        async with asyncio.timeout(60):
            await asyncio.gather(*(e.wait() for e in events))
        spans.append(max(c.seen[number] for c in clients) - sent)
        await asyncio.sleep(0.05)
    for task in listeners:
        task.cancel()
    for client in clients:
        client.writer.close()
    return spans


def serve_muc(state: Path, port: int, users: int) -> None:
    """The server process: bench_server.py's settings with group chat enabled again."""
    from dataclasses import replace

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_server import bench_config, ensure_users  # type: ignore[import-not-found]

    from appliance.app import serve

    config = bench_config(state, port, DOMAIN)
    disabled = tuple(m for m in config.hosts[0].modules.disabled if m != "muc")
    host = replace(config.hosts[0], modules=replace(config.hosts[0].modules, disabled=disabled))
    config = replace(config, hosts=(host,))
    state.mkdir(parents=True, exist_ok=True)
    asyncio.run(ensure_users(config, users, "user", PASSWORD))
    print(f"parlour bench server pid {os.getpid()} on 127.0.0.1:{port}", flush=True)
    asyncio.run(serve(config))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--occupants", type=int, default=500)
    parser.add_argument("--messages", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=50, help="logins under way at once")
    parser.add_argument("--state", type=Path, default=None, help="server state folder (default: a temp dir)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_muc(args.state, args.port, args.occupants)
        return
    state = args.state or Path(tempfile.mkdtemp(prefix="parlour-muc-bench-"))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--port", str(port), "--occupants", str(args.occupants),
         "--state", str(state)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout is not None
        for line in server.stdout:
            print(f"server: {line.rstrip()}", flush=True)
            if "bench server pid" in line:
                break
        wait_for_port(port)
        spans = asyncio.run(run(args.occupants, args.messages, args.concurrency, port))
    finally:
        server.terminate()
        server.wait(30)
    ms = sorted(s * 1000 for s in spans)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    print(f"fan-out of one groupchat message to {args.occupants} occupants over {len(ms)} messages: "
          f"median {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, min {ms[0]:.1f} ms, max {ms[-1]:.1f} ms")


if __name__ == "__main__":
    main()
