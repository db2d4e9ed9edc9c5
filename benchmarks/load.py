"""Quick development load: starts a bench server, logs in N clients, sends messages, prints figures.

    python benchmarks/load.py --users 2000 --messages 20000

Everything is on loopback and bounded (user and message counts, a global timeout). For the real
side-by-side comparison with ejabberd and Prosody use ../shared/bench (tsung); see benchmarks/README.md.
Figures printed: logins/s, server RSS per idle session, messages/s delivered and latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADER = (
    "<?xml version='1.0'?><stream:stream to='{domain}' xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RawClient:
    """A minimal XMPP client: PLAIN login without TLS (bench server only), chat send/receive."""

    def __init__(self, user: str, domain: str) -> None:
        self.user = user
        self.domain = domain
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.buffer = b""

    async def _want(self, token: bytes) -> None:
        assert self.reader is not None
        while token not in self.buffer:
            chunk = await self.reader.read(65536)
            if not chunk:
                raise ConnectionError(f"{self.user}: closed waiting for {token!r}")
            self.buffer += chunk
        self.buffer = self.buffer[self.buffer.index(token) + len(token) :]

    async def login(self, port: int, password: str, host: str = "127.0.0.1") -> None:
        self.reader, self.writer = await asyncio.open_connection(host, port)
        header = HEADER.format(domain=self.domain).encode()
        self.writer.write(header)
        await self._want(b"</stream:features>")
        cred = base64.b64encode(f"\0{self.user}\0{password}".encode()).decode()
        self.writer.write(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{cred}</auth>".encode())
        await self._want(b"<success")
        self.writer.write(header)
        await self._want(b"</stream:features>")
        bind = b"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>load</resource></bind>"
        self.writer.write(b"<iq type='set' id='b'>" + bind + b"</iq>")
        await self._want(b"</iq>")
        self.writer.write(b"<presence/>")

    def send(self, to: str, body: str) -> None:
        assert self.writer is not None
        self.writer.write(f"<message to='{to}@{self.domain}/load' type='chat'><body>{body}</body></message>".encode())

    async def receive_stamps(self, count: int, latencies: list[float]) -> None:
        """Read until `count` bodies arrived; each body is a send timestamp."""
        assert self.reader is not None
        seen = 0
        while seen < count:
            while b"</body>" not in self.buffer:
                chunk = await self.reader.read(65536)
                if not chunk:
                    return
                self.buffer += chunk
            start = self.buffer.index(b"<body>") + 6
            end = self.buffer.index(b"</body>")
            latencies.append(time.perf_counter() - float(self.buffer[start:end]))
            self.buffer = self.buffer[end + 7 :]
            seen += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def run(args: argparse.Namespace, port: int, pid: int) -> None:
    base = rss_kib(pid)
    clients = [RawClient(f"user{i}", args.domain) for i in range(1, args.users + 1)]
    started = time.perf_counter()
    sem = asyncio.Semaphore(args.concurrency)

    async def login(client: RawClient) -> None:
        async with sem:
            await client.login(port, args.password)

    await asyncio.gather(*(login(c) for c in clients))
    elapsed = time.perf_counter() - started
    print(f"logins: {args.users} in {elapsed:.2f} s = {args.users / elapsed:.0f}/s (concurrency {args.concurrency})")
    await asyncio.sleep(12)  # let the server's sweep hibernate idle parsers
    per_session = (rss_kib(pid) - base) / args.users
    print(f"memory: {per_session:.1f} KiB per idle session (RSS {rss_kib(pid) / 1024:.0f} MiB)")

    pairs = min(args.users // 2, 500)
    per_pair = max(1, args.messages // pairs)
    latencies: list[float] = []
    receivers = [asyncio.create_task(clients[2 * i + 1].receive_stamps(per_pair, latencies)) for i in range(pairs)]
    started = time.perf_counter()
    for n in range(per_pair):
        for i in range(pairs):
            clients[2 * i].send(clients[2 * i + 1].user, f"{time.perf_counter():.6f}")
        if n % 10 == 9:
            await asyncio.sleep(0)
            for i in range(pairs):
                writer = clients[2 * i].writer
                assert writer is not None
                await writer.drain()
    await asyncio.wait_for(asyncio.gather(*receivers), 120)
    elapsed = time.perf_counter() - started
    total = pairs * per_pair
    lat = sorted(latencies)
    print(
        f"messages: {total} delivered in {elapsed:.2f} s = {total / elapsed:.0f}/s; latency median "
        f"{statistics.median(lat) * 1000:.1f} ms, p95 {lat[int(len(lat) * 0.95)] * 1000:.1f} ms (burst, not paced)"
    )
    for client in clients:
        client.close()


def wait_for_port(port: int, seconds: float) -> None:
    import socket

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"the bench server did not listen on port {port}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--port", type=int, default=15499)
    parser.add_argument("--domain", default="bench.local")
    parser.add_argument("--password", default="pass")
    parser.add_argument("--state", type=Path, default=None)
    args = parser.parse_args()
    args.users = min(args.users, 20_000)
    args.messages = min(args.messages, 200_000)
    state = args.state or Path(tempfile.mkdtemp(prefix="parlour-load-"))
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("bench_server.py")), "--port", str(args.port),
         "--users", str(args.users), "--state", str(state), "--domain", args.domain],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout is not None
        for line in server.stdout:
            if "bench server pid" in line:
                break
        wait_for_port(args.port, 60)
        asyncio.run(asyncio.wait_for(run(args, args.port, server.pid), 600))
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
