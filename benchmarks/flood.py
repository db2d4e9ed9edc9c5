"""One user floods another (issue 13): server memory and other users' logins while it goes on.

    python benchmarks/flood.py                       # TCP then WebSocket, 1,500 messages of 250 KiB
    python benchmarks/flood.py --code /path/to/other/checkout   # the same against another version
    python benchmarks/flood.py --rate 1073741824     # shaping out of the way: only the queue bounds hold

A server runs in its own process (default modules, MAM included; plaintext on loopback, a bench
setting). `flooder` logs in and sends `--messages` chat messages of `--size` bytes to `target`, who is
online and reads everything, as fast as its connection lets it, for at most `--duration` seconds.
Meanwhile `probe` logs in afresh every `--probe-every` seconds. Printed per transport: messages sent
and delivered, the server's RSS before, at its peak, `--settle` seconds after the flood and once
malloc_trim(0) has run in the server, and the probe logins' times (median, worst, and how many took
over a second or failed).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ctypes
import ctypes.util
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from load import RawClient  # noqa: E402  (a sibling script, not a package)

DOMAIN = "localhost"
PASSWORD = "flood-password"
FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def plain(user: str) -> str:
    return base64.b64encode(f"\0{user}\0{PASSWORD}".encode()).decode()


# -- the server process ------------------------------------------------------------------------------


def serve(state: Path, port: int, http_port: int, rate: int) -> None:
    from bench_server import ensure_users  # the benchmarks' account helper

    from appliance.app import serve as run
    from appliance.config.load import default_config

    cfg = default_config(state)
    c2s = replace(cfg.c2s, port=port, direct_tls_port=0, interfaces=("127.0.0.1",),
                  allow_plaintext_on_loopback=True)
    http = replace(cfg.http, port=http_port, https=False, interfaces=("127.0.0.1",),
                   consider_websocket_secure=True)
    limits = replace(cfg.limits, auth_failure_delay=0.0)
    if rate:  # 0: the default shaping; the old code has no such key
        limits = replace(limits, rate=rate)
    cfg = replace(cfg, c2s=c2s, http=http, limits=limits)
    asyncio.run(ensure_users(cfg, 3, "u", PASSWORD))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    # SIGUSR1 asks the C allocator to give free memory back (what it keeps is then live data, not
    # fragments): the benchmark reads RSS before and after, to tell the two apart.
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    signal.signal(signal.SIGUSR1, lambda *_: libc.malloc_trim(0))
    print("ready", flush=True)
    asyncio.run(run(cfg))


# -- clients -------------------------------------------------------------------------------------------


class TcpClient(RawClient):
    """load.py's raw client (PLAIN login without TLS, resource "load"), sending and counting as well."""

    def __init__(self, user: str) -> None:
        super().__init__(user, DOMAIN)

    async def send(self, data: str) -> None:
        assert self.writer is not None
        self.writer.write(data.encode())
        await self.writer.drain()

    async def count_messages(self, counter: list[int]) -> None:
        """Read forever, counting the ends of messages (no parsing: the reader is not the bottleneck)."""
        assert self.reader is not None
        tail = b""
        while True:
            chunk = await self.reader.read(1 << 20)
            if not chunk:
                return
            data = tail + chunk
            counter[0] += data.count(b"</message>")
            tail = data[-9:]

class WsClient:
    """Raw XMPP over WebSocket (RFC 7395) with aiohttp."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.http = None
        self.ws = None

    async def _want(self, token: str) -> None:
        while True:
            message = await self.ws.receive()
            if message.type.name != "TEXT":
                raise ConnectionError(f"{self.user}: {message.type.name} waiting for {token!r}")
            if token in message.data:
                return

    async def login(self, http_port: int, resource: str) -> None:
        import aiohttp

        self.http = aiohttp.ClientSession()
        self.ws = await self.http.ws_connect(f"ws://127.0.0.1:{http_port}/xmpp-websocket", protocols=("xmpp",),
                                             max_msg_size=0)
        open_ = f"<open xmlns='{FRAMING}' to='{DOMAIN}' version='1.0'/>"
        await self.ws.send_str(open_)
        await self._want("features")
        await self.ws.send_str(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{plain(self.user)}</auth>")
        await self._want("success")
        await self.ws.send_str(open_)
        await self._want("features")
        await self.ws.send_str(f"<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='{BIND}'>"
                               f"<resource>{resource}</resource></bind></iq>")
        await self._want("</iq>")
        await self.ws.send_str("<presence xmlns='jabber:client'/>")

    async def send(self, data: str) -> None:
        await self.ws.send_str(data)

    async def close_async(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.http is not None:
            await self.http.close()


# -- one run -------------------------------------------------------------------------------------------


@dataclass
class Figures:
    transport: str
    sent: int = 0
    delivered: list[int] = field(default_factory=lambda: [0])
    flood_seconds: float = 0.0
    cut_off: str = ""
    rss_base: float = 0.0
    rss_peak: float = 0.0
    rss_after: float = 0.0
    rss_trimmed: float = 0.0
    logins: list[float] = field(default_factory=list)
    login_failures: int = 0


async def sample_rss(pid: int, figures: Figures, stop: asyncio.Event) -> None:
    while not stop.is_set():
        figures.rss_peak = max(figures.rss_peak, rss_mib(pid))
        await asyncio.sleep(0.1)


async def probe_logins(port: int, figures: Figures, stop: asyncio.Event, every: float) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        client = TcpClient("u3")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(10):
                await client.login(port, PASSWORD)
            figures.logins.append(time.perf_counter() - started)
        except (TimeoutError, OSError, ConnectionError):
            figures.login_failures += 1
        finally:
            client.close()
        await asyncio.sleep(every)


async def flood(args: argparse.Namespace, transport: str, ports: tuple[int, int], pid: int) -> Figures:
    port, http_port = ports
    figures = Figures(transport)
    target = TcpClient("u2")
    await target.login(port, PASSWORD)
    reading = asyncio.create_task(target.count_messages(figures.delivered))
    await asyncio.sleep(2)
    figures.rss_base = rss_mib(pid)
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(pid, figures, stop))
    prober = asyncio.create_task(probe_logins(port, figures, stop, args.probe_every))
    flooder: TcpClient | WsClient = TcpClient("u1") if transport == "tcp" else WsClient("u1")
    if isinstance(flooder, TcpClient):
        await flooder.login(port, PASSWORD)
    else:
        await flooder.login(http_port, "flood")
    body = "x" * args.size
    xmlns = "" if transport == "tcp" else " xmlns='jabber:client'"
    started = time.perf_counter()
    try:
        async with asyncio.timeout(args.duration):
            for n in range(args.messages):
                await flooder.send(f"<message{xmlns} to='u2@{DOMAIN}' type='chat' id='f{n}'><body>{body}</body>"
                                   "</message>")
                figures.sent = n + 1
    except TimeoutError:
        figures.cut_off = f"stopped after {args.duration:.0f} s"
    except (ConnectionError, OSError) as exc:
        figures.cut_off = f"disconnected: {exc.__class__.__name__}"
    figures.flood_seconds = time.perf_counter() - started
    if isinstance(flooder, TcpClient):
        flooder.close()
    else:
        await flooder.close_async()
    await asyncio.sleep(args.settle)
    stop.set()
    await asyncio.gather(sampler, prober)
    figures.rss_after = rss_mib(pid)
    os.kill(pid, signal.SIGUSR1)
    await asyncio.sleep(1)
    figures.rss_trimmed = rss_mib(pid)
    reading.cancel()
    target.close()
    return figures


def report(f: Figures) -> None:
    logins = sorted(f.logins)
    slow = sum(1 for t in logins if t > 1.0)
    median = statistics.median(logins) * 1000 if logins else float("nan")
    worst = logins[-1] * 1000 if logins else float("nan")
    cut_off = f" ({f.cut_off})" if f.cut_off else ""
    print(f"{f.transport}: sent {f.sent} messages in {f.flood_seconds:.1f} s{cut_off}, {f.delivered[0]} delivered")
    print(f"  server RSS: {f.rss_base:.0f} MiB before, {f.rss_peak:.0f} MiB peak, {f.rss_after:.0f} MiB after, "
          f"{f.rss_trimmed:.0f} MiB after malloc_trim")
    print(f"  probe logins during the flood: {len(logins)} ok, median {median:.0f} ms, worst {worst:.0f} ms, "
          f"{slow} over 1 s, {f.login_failures} failed")


async def run(args: argparse.Namespace, ports: tuple[int, int], pid: int) -> None:
    for transport in args.transports.split(","):
        report(await flood(args, transport, ports, pid))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1500)
    parser.add_argument("--size", type=int, default=250 * 1024)
    parser.add_argument("--duration", type=float, default=60.0, help="stop flooding after this many seconds")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after the flood before RSS is read")
    parser.add_argument("--probe-every", type=float, default=0.5)
    parser.add_argument("--transports", default="tcp,websocket")
    parser.add_argument("--code", type=Path, help="checkout whose appliance package the server runs")
    parser.add_argument("--rate", type=int, default=0, help="limits.rate in bytes/s (default: the server's)")
    parser.add_argument("--serve", nargs=4, metavar=("STATE", "PORT", "HTTP_PORT", "RATE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), int(args.serve[1]), int(args.serve[2]), int(args.serve[3]))
        return
    import socket

    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    env = dict(os.environ)
    if args.code:
        env["PYTHONPATH"] = str(args.code.resolve())
    with tempfile.TemporaryDirectory() as state:
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", state, str(ports[0]), str(ports[1]), str(args.rate)],
            stdout=subprocess.PIPE, text=True, env=env,
        )
        try:
            assert server.stdout is not None
            while "ready" not in server.stdout.readline():
                if server.poll() is not None:
                    raise SystemExit("the server did not start")
            time.sleep(2)
            asyncio.run(run(args, (ports[0], ports[1]), server.pid))
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
