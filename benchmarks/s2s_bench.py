"""Server-to-server throughput, latency and CPU: two Parlours, two Prosodys, two ejabberds federating.

    sudo .venv/bin/python benchmarks/s2s_bench.py --users 50 --messages 100 --servers parlour prosody ejabberd

For each kind, server A (a.bench, 10.99.0.2) and server B (b.bench, 10.99.0.3) run in a network namespace
of their own whose loopback carries both addresses; they find each other through SRV and A records served
by a DNS server of this script (10.99.0.1:53, the namespace's resolv.conf), and authenticate with
certificates from a throwaway CA (SASL EXTERNAL where the server offers it, dialback otherwise), over
TLS. N users log in on each side (PLAIN without TLS on c2s: a bench setting), user i of A messages user i
of B and the reverse, M messages each, in bursts. Printed per kind: messages delivered per second, the
latency median and 95th percentile (send to receive, over two servers) in the burst (mostly queueing)
and for 200 messages sent one at a time afterwards (paced), and the CPU both servers used per message
(user + system time of their process groups during the burst, divided by the messages delivered).
Needs root (network namespaces) and Debian's prosody and ejabberd. Loops and waits are bounded;
figures only, no assertions. The load generator is this Python process: at high rates it may be the
limit, for every kind alike.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_server import bench_config, ensure_users  # noqa: E402
from benchmarks.load import RawClient  # noqa: E402
from tests.integration.ejabberd_peer import EjabberdPeer  # noqa: E402
from tests.integration.prosody_peer import FederationCA, Issued, ProsodyPeer, stop_group  # noqa: E402
from tests.net.dnsserver import DnsServer  # noqa: E402

DNS, A_ADDRESS, B_ADDRESS = "10.99.0.1", "10.99.0.2", "10.99.0.3"
DOMAINS = {"a.bench": A_ADDRESS, "b.bench": B_ADDRESS}
PASSWORD = "pass"
PACED = 200  # one-at-a-time messages for the latency without queueing
PARLOUR_C2S = {"a.bench": 15301, "b.bench": 15302}  # loopback: Parlour allows PLAIN without TLS only there


@dataclass
class Spot:
    """Where a peer runs: the namespace's name and the address it listens on (what the peers expect)."""

    name: str
    inner: str


@dataclass
class Running:
    """One started server: where its clients log in, and what to stop and measure."""

    domain: str
    c2s: tuple[str, int]
    process: subprocess.Popen[bytes] | None
    stop: Callable[[], object]


def cpu_seconds(group: int) -> float:
    """User + system CPU of every process in process group `group` (the server and its children)."""
    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # pgrp
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


# -- servers -------------------------------------------------------------------------------------------


async def start_parlour(base: Path, domain: str, cert: Issued, ca: Path, users: int) -> Running:
    argv = [sys.executable, __file__, "--serve-parlour", domain, "--state", str(base), "--cert", str(cert.cert),
            "--key", str(cert.key), "--ca", str(ca), "--users", str(users)]
    log = open(base.parent / f"parlour-{domain}.log", "wb")  # noqa: SIM115 - kept open for the child
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
    await wait_listening("127.0.0.1", PARLOUR_C2S[domain], process)
    await wait_listening(DOMAINS[domain], 5269, process)
    return Running(domain, ("127.0.0.1", PARLOUR_C2S[domain]), process, lambda: stop_group(process, grace=10))


async def start_prosody(base: Path, domain: str, cert: Issued, ca: Path, users: int, ns: str) -> Running:
    peer = ProsodyPeer(base, Spot(ns, DOMAINS[domain]), domain, certificate=cert, cafile=ca,  # type: ignore[arg-type]
                       users={f"user{i}": PASSWORD for i in range(1, users + 1)}, log_level="error")
    await peer.start()
    return Running(domain, (DOMAINS[domain], 5222), peer.process, peer.stop)


async def start_ejabberd(base: Path, domain: str, cert: Issued, ca: Path, users: int, ns: str) -> Running:
    peer = EjabberdPeer(base, Spot(ns, DOMAINS[domain]), domain, certificate=cert, cafile=ca,  # type: ignore[arg-type]
                        users={f"user{i}": PASSWORD for i in range(1, users + 1)}, loglevel="warning",
                        node=f"s2sbench{domain[0]}@localhost", dist_port=35100 + ord(domain[0]))
    await peer.start()
    return Running(domain, (DOMAINS[domain], 5222), peer.process, peer.stop)


async def wait_listening(host: str, port: int, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode})")
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise TimeoutError(f"nothing listens on {host}:{port}")


def serve_parlour(args: argparse.Namespace) -> None:
    """The child process: one Parlour for `args.serve_parlour`, federation on, s2s on its own address."""
    from appliance.app import serve
    from appliance.config.model import FederationConfig, S2SConfig, TlsConfig

    domain = args.serve_parlour
    cfg = bench_config(args.state, PARLOUR_C2S[domain], domain)
    s2s = S2SConfig(interfaces=(DOMAINS[domain],), port=5269, nameservers=(f"{DNS}:53",), ca_bundle=args.ca,
                    max_queue=100_000)
    limits = replace(cfg.limits, max_connections_per_ip=100_000)
    cfg = replace(cfg, s2s=s2s, federation=FederationConfig(enabled=True), limits=limits,
                  tls=TlsConfig(certificate=args.cert, private_key=args.key))
    args.state.mkdir(parents=True, exist_ok=True)
    asyncio.run(ensure_users(cfg, args.users, "user", PASSWORD))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(cfg))


# -- load ----------------------------------------------------------------------------------------------


class Sender(RawClient):
    def send_to(self, jid: str, body: str) -> None:
        assert self.writer is not None
        self.writer.write(f"<message to='{jid}/load' type='chat'><body>{body}</body></message>".encode())


async def warm_up(one: Sender, other: Sender) -> None:
    """The first message each way (one at a time) opens and authenticates the s2s streams."""
    warm: list[float] = []
    for sender, receiver in ((one, other), (other, one)):
        sender.send_to(f"{receiver.user}@{receiver.domain}", f"{time.perf_counter():.6f}")
        await asyncio.wait_for(receiver.receive_stamps(1, warm), 60)


async def open_streams(a: Running, b: Running) -> None:
    """Opens the s2s streams between `a` and `b` with one message each way between their user1s."""
    one, other = Sender("user1", a.domain), Sender("user1", b.domain)
    for client, running in ((one, a), (other, b)):
        await client.login(running.c2s[1], PASSWORD, running.c2s[0])
    try:
        await warm_up(one, other)
    finally:
        one.close()
        other.close()


async def measure(a: Running, b: Running, users: int, messages: int, burst: int) -> dict[str, float]:
    sides = {a.domain: a, b.domain: b}
    clients = {d: [Sender(f"user{i}", d) for i in range(1, users + 1)] for d in sides}
    for domain, running in sides.items():
        host, port = running.c2s
        for start in range(0, users, 25):
            await asyncio.gather(*(c.login(port, PASSWORD, host) for c in clients[domain][start:start + 25]))
    pairs = list(zip(clients[a.domain], clients[b.domain], strict=True))
    await warm_up(pairs[0][0], pairs[0][1])
    groups = [r.process.pid for r in sides.values() if r.process is not None]
    cpu_before = sum(cpu_seconds(g) for g in groups)
    latencies: list[float] = []
    receivers = [asyncio.create_task(c.receive_stamps(messages, latencies)) for pair in pairs for c in pair]
    started = time.perf_counter()
    for n in range(messages):
        for one, other in pairs:
            one.send_to(f"{other.user}@{other.domain}", f"{time.perf_counter():.6f}")
            other.send_to(f"{one.user}@{one.domain}", f"{time.perf_counter():.6f}")
        if n % burst == burst - 1:
            await asyncio.gather(*(c.writer.drain() for pair in pairs for c in pair if c.writer is not None))
    try:
        await asyncio.wait_for(asyncio.gather(*receivers), 300)
    except TimeoutError:
        for task in receivers:
            task.cancel()
    elapsed = time.perf_counter() - started
    cpu = sum(cpu_seconds(g) for g in groups) - cpu_before
    # latency without queueing: one message at a time, alternately each way, each awaited
    paced: list[float] = []
    for n in range(PACED):
        one, other = pairs[n % len(pairs)] if n % 2 == 0 else pairs[n % len(pairs)][::-1]
        one.send_to(f"{other.user}@{other.domain}", f"{time.perf_counter():.6f}")
        await asyncio.wait_for(other.receive_stamps(1, paced), 30)
    for pair in pairs:
        for client in pair:
            client.close()
    delivered = len(latencies)
    lat = sorted(latencies) or [float("nan")]
    paced.sort()
    return {"sent": 2 * users * messages, "delivered": delivered, "seconds": elapsed, "rate": delivered / elapsed,
            "median_ms": statistics.median(lat) * 1000, "p95_ms": lat[int(len(lat) * 0.95)] * 1000,
            "paced_ms": statistics.median(paced) * 1000, "paced_p95_ms": paced[int(len(paced) * 0.95)] * 1000,
            "cpu_us": cpu / max(delivered, 1) * 1e6}


@asynccontextmanager
async def federating(kind: str, base: Path, ns: str, users: int) -> AsyncIterator[tuple[Running, Running]]:
    """Servers A and B of `kind` federating (DNS, CA, certificates), `users` accounts on each; stopped after."""
    ca = FederationCA(base / "ca")
    zone: dict[tuple[str, str], list[str]] = {}
    for domain, address in DOMAINS.items():
        zone[(f"_xmpp-server._tcp.{domain}.", "SRV")] = [f"0 5 5269 {domain}."]
        zone[(f"{domain}.", "A")] = [address]
    running: list[Running] = []
    async with DnsServer(zone, host=DNS, port=53):
        try:
            for domain in DOMAINS:
                cert = ca.issue(domain, client_auth=True)  # ejabberd 23.01 wants clientAuth for EXTERNAL
                if kind == "parlour":
                    running.append(await start_parlour(base / domain, domain, cert, ca.pem, users))
                elif kind == "prosody":
                    running.append(await start_prosody(base / domain, domain, cert, ca.pem, users, ns))
                else:
                    running.append(await start_ejabberd(base / domain, domain, cert, ca.pem, users, ns))
            yield running[0], running[1]
        finally:
            for server in running:
                await server.stop()


async def bench(kind: str, base: Path, ns: str, users: int, messages: int, burst: int) -> dict[str, float]:
    async with federating(kind, base, ns, users) as (a, b):
        return await measure(a, b, users, messages, burst)


def each_kind(prefix: str, heading: list[str], kinds: list[str], rows: Callable[[str, Path], list[str]],
              keep: bool = False) -> int:
    """Prints `heading`, then the rows of figures of each kind in turn (state in a temporary folder)."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    for line in heading:
        print(line, flush=True)
    try:
        for kind in kinds:
            for row in rows(kind, base / kind):
                print(row, flush=True)
    finally:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


def inside(args: argparse.Namespace) -> int:
    """Runs in the namespace: each kind in turn, one line of figures each."""
    def row(kind: str, base: Path) -> list[str]:
        figures = asyncio.run(asyncio.wait_for(
            bench(kind, base, args.namespace, args.users, args.messages, args.burst), 900))
        burst = f"{figures['median_ms']:.0f} / {figures['p95_ms']:.0f}"
        paced = f"{figures['paced_ms']:.1f} / {figures['paced_p95_ms']:.1f}"
        return [f"{kind:<10} {figures['delivered']:>6.0f}/{figures['sent']:<5} {figures['rate']:>7.0f} {burst:>20} "
                f"{paced:>20} {figures['cpu_us']:>11.0f}"]

    return each_kind("s2s-bench-", [
        f"s2s benchmark: {args.users} users per side, {args.messages} messages each way per pair, "
        f"bursts of {args.burst}; load average {os.getloadavg()[0]:.1f}; {os.cpu_count()} cores",
        f"{'servers':<10} {'delivered':>12} {'msg/s':>7} {'burst median/p95 ms':>20} "
        f"{'paced median/p95 ms':>20} {'CPU µs/msg':>11}"], args.servers, row)


def in_namespace(argv: list[str]) -> int:
    """Makes a namespace (its loopback carries the DNS and both servers' addresses), runs `argv` inside it
    with `--inside NAME` appended, and removes it."""
    name = f"s2sbench{os.getpid() % 10000}"
    etc = Path("/etc/netns") / name
    run = lambda *argv: subprocess.run(argv, check=True, capture_output=True)  # noqa: E731
    run("ip", "netns", "add", name)
    try:
        run("ip", "-n", name, "link", "set", "lo", "up")
        for address in (DNS, A_ADDRESS, B_ADDRESS):
            run("ip", "-n", name, "addr", "add", f"{address}/32", "dev", "lo")
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text(f"nameserver {DNS}\n")
        (etc / "hosts").write_text("127.0.0.1 localhost\n")
        return subprocess.run(["ip", "netns", "exec", name, *argv, "--inside", name], check=False).returncode
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        shutil.rmtree(etc, ignore_errors=True)


def outside(args: argparse.Namespace) -> int:
    """Runs this script inside a namespace of its own."""
    return in_namespace([sys.executable, __file__, "--users", str(args.users), "--messages", str(args.messages),
                         "--burst", str(args.burst), "--servers", *args.servers])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50, help="users per side (at most 1000)")
    parser.add_argument("--messages", type=int, default=100, help="messages each way per pair (at most 10000)")
    parser.add_argument("--burst", type=int, default=10, help="messages per sender between drains")
    parser.add_argument("--servers", nargs="+", default=["parlour", "prosody", "ejabberd"],
                        choices=["parlour", "prosody", "ejabberd"])
    parser.add_argument("--inside", dest="namespace", help=argparse.SUPPRESS)
    parser.add_argument("--serve-parlour", help=argparse.SUPPRESS)
    parser.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cert", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--key", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ca", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.users = max(1, min(args.users, 1000))
    args.messages = max(1, min(args.messages, 10_000))
    if args.serve_parlour:
        serve_parlour(args)
        return 0
    if args.namespace:
        return inside(args)
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    return outside(args)


if __name__ == "__main__":
    raise SystemExit(main())
