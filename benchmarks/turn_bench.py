"""TURN relay throughput and CPU per relayed packet: Parlour's built-in TURN server against coturn, in one run.

Each server runs alone in its own process on loopback with the same shared secret. coturn's own load client
(turnutils_uclient, -m sessions in parallel, each sending -n packets of -l bytes every -z ms through a relay
to turnutils_peer, which echoes them back) drives both. Printed per server: packets relayed (both ways),
wall time, packets/s, loss, and server CPU (user+system from /proc) per relayed packet.

    python benchmarks/turn_bench.py [--sessions 20] [--packets 500] [--size 160] [--interval 2]

Needs coturn (apt install coturn). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECRET = "benchmark-secret"
CLOCK = os.sysconf("SC_CLK_TCK")

PARLOUR_TURN = """
import asyncio, sys
from appliance.turn.server import TurnServer, TurnSettings
async def main():
    server = TurnServer(TurnSettings(secret=sys.argv[1], realm="bench.example", relay_ip="127.0.0.1",
                        listen=("127.0.0.1",), port=int(sys.argv[2]), min_port=int(sys.argv[3]),
                        max_port=int(sys.argv[3]) + 2000, user_quota=10_000, total_quota=10_000))
    await server.start()
    print("ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK


def wait_udp(port: int, timeout: float = 10.0) -> None:
    """Until a STUN Binding request on `port` is answered."""
    request = bytes.fromhex("000100002112a442") + os.urandom(12)
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        while time.monotonic() < deadline:
            sock.sendto(request, ("127.0.0.1", port))
            try:
                sock.recv(1500)
                return
            except OSError:
                continue
    raise SystemExit(f"no STUN answer on port {port}")


def start_parlour(port: int, relay_from: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", PARLOUR_TURN, SECRET, str(port), str(relay_from)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_coturn(port: int, relay_from: int, folder: Path) -> subprocess.Popen[bytes]:
    turnserver = shutil.which("turnserver")
    if turnserver is None:
        raise SystemExit("coturn is not installed (apt install coturn)")
    return subprocess.Popen([
        turnserver, "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", f"--listening-port={port}",
        f"--min-port={relay_from}", f"--max-port={relay_from + 2000}", "--use-auth-secret",
        f"--static-auth-secret={SECRET}", "--realm=bench.example", "--no-tls", "--no-dtls", "--no-cli",
        "--allow-loopback-peers", "--no-multicast-peers", f"--pidfile={folder / 'coturn.pid'}",
        "--log-file=stdout", "--simple-log", "--total-quota=10000", "--user-quota=10000",
    ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def drive(port: int, peer_port: int, args: argparse.Namespace) -> tuple[int, int, float]:
    """(sent, received, seconds) of one turnutils_uclient run against the server on `port`."""
    command = ["turnutils_uclient", "-W", SECRET, "-u", "bench@bench.example", "-e", "127.0.0.1",
               "-r", str(peer_port), "-m", str(args.sessions), "-n", str(args.packets), "-l", str(args.size),
               "-z", str(args.interval), "-c", "-p", str(port), "127.0.0.1"]
    started = time.monotonic()
    output = subprocess.run(command, capture_output=True, text=True, timeout=600).stdout
    seconds = time.monotonic() - started
    totals = re.findall(r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)", output)
    if not totals:
        raise SystemExit("turnutils_uclient printed no totals:\n" + output[-2000:])
    sent, received = totals[-1]
    return int(sent), int(received), seconds


def measure(name: str, process: subprocess.Popen[bytes], port: int, peer_port: int,
            args: argparse.Namespace) -> dict[str, float | str]:
    try:
        wait_udp(port)
        before = cpu_seconds(process.pid)
        sent, received, seconds = drive(port, peer_port, args)
        cpu = cpu_seconds(process.pid) - before
    finally:
        process.terminate()
        process.wait(10)
    relayed = sent + received  # every packet crosses the relay twice: to the peer and back
    return {"server": name, "sent": sent, "received": received, "seconds": seconds,
            "packets_per_s": relayed / seconds, "loss": 1 - received / sent if sent else 1.0,
            "cpu_s": cpu, "cpu_us_per_packet": cpu / relayed * 1e6 if relayed else float("nan"),
            "cpu_share": cpu / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20, help="parallel relayed sessions")
    parser.add_argument("--packets", type=int, default=500, help="packets each session sends")
    parser.add_argument("--size", type=int, default=160, help="payload bytes (160: a 20 ms G.711 frame)")
    parser.add_argument("--interval", type=int, default=2, help="ms between a session's packets")
    args = parser.parse_args()
    if shutil.which("turnutils_uclient") is None:
        raise SystemExit("coturn is not installed (apt install coturn)")
    peer_port = free_port()
    peer = subprocess.Popen(["turnutils_peer", "-L", "127.0.0.1", "-p", str(peer_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for name, start in (("parlour", lambda p, r: start_parlour(p, r)),
                                ("coturn", lambda p, r: start_coturn(p, r, Path(folder)))):
                port = free_port()
                rows.append(measure(name, start(port, 40000 if name == "parlour" else 43000), port, peer_port, args))
    finally:
        peer.terminate()
    print(f"TURN relay, {args.sessions} sessions x {args.packets} packets of {args.size} B every {args.interval} ms "
          f"(UDP, channels), load from turnutils_uclient; {os.cpu_count()} cores")
    print("| server | relayed packets | seconds | packets/s | loss | server CPU s | CPU µs/packet | CPU % of a core |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['server']} | {int(r['sent']) + int(r['received']):,} | {r['seconds']:.1f} | "
              f"{r['packets_per_s']:,.0f} | {float(r['loss']):.2%} | {r['cpu_s']:.2f} | "
              f"{r['cpu_us_per_packet']:.1f} | {float(r['cpu_share']):.0%} |")


if __name__ == "__main__":
    main()
