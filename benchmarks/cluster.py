"""Messages/s and logins/s side by side: one node on SQLite, one on PostgreSQL, a cluster of two and three.

    python benchmarks/cluster.py                       # 200 pairs, 20,000 messages, 1,000 logins per setup
    python benchmarks/cluster.py --pairs 50 --messages 5000 --logins 300 --setups sqlite,pg,cluster2

Every node is a real `parlour run` process on loopback (SASL PLAIN without TLS, the bench setting), with
the IM modules of the tsung bench (no archive, group chat or uploads), on a throwaway PostgreSQL
(`tests/pgserver.py`) and Redis (`tests/redisserver.py`) started by this script. Messages: each sender
sends bursts of chat messages to its partner; in a cluster, a sender and its partner are always on
different nodes, so every message crosses Redis. Logins: fresh accounts (each pays its PBKDF2) spread over
the nodes, 50 at a time. CPU per message is the CPU time of every node process plus Redis (from /proc)
over the measured pass, divided by the messages. Figures on a shared machine vary by 10-20 %.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from appliance.app.storage import Storage  # noqa: E402 - after the path set-up
from appliance.config.model import StorageConfig  # noqa: E402
from appliance.core.accounts import AccountService  # noqa: E402
from tests.integration.harness import free_port  # noqa: E402
from tests.pgserver import binaries, running_postgres  # noqa: E402
from tests.redisserver import running_redis  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from profile_login import bound, login  # noqa: E402 - the same raw PLAIN login as the other benchmarks
from profile_messages import receive  # noqa: E402

DOMAIN = "bench.local"  # the domain of profile_login's stream header
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def node_config(folder: Path, name: str, port: int, storage: str, redis: str) -> Path:
    cluster = (f'[cluster]\nenabled = true\nredis_url = "{redis}"\nnode = "{name}"\nheartbeat = 1\n'
               f"expiry = 5\n\n" if redis else "")
    path = folder / f"{name}.toml"
    path.write_text(
        f'[server]\nstate_dir = "{folder / ("state-" + name)}"\n\n'
        f'[c2s]\ninterfaces = ["127.0.0.1"]\nport = {port}\ndirect_tls_port = 0\n'
        "allow_plaintext_on_loopback = true\nidle_timeout = 3600\n\n"
        "[limits]\nscram_iterations = 4096\nauth_failure_delay = 0\nmax_connections_per_ip = 100000\n"
        "auth_failures_per_ip = 1000000\nstanza_rate = 1000000\nrate = 100000000\n\n"
        "[http]\nenabled = false\n\n[logging]\nlevel = \"warning\"\n\n"
        + (f'[storage]\nurl = "{storage}"\n\n' if storage else "") + cluster
        + f'[modules]\ndisabled = ["mam", "muc", "upload", "push", "external_services"]\n\n[hosts."{DOMAIN}"]\n'
    )
    return path


async def create_accounts(state: Path, storage: str, count: int) -> None:
    """user1..userN with the password "pass" (SQLite in `state`, or the PostgreSQL database `storage`)."""
    db = await Storage.open(state, StorageConfig(url=storage))
    try:
        service = AccountService(db.stores.accounts, iterations=4096, min_password_length=1)
        users = [(f"user{i}", "pass") for i in range(1, count + 1)]
        for start in range(0, count, 1000):
            await service.create_many(DOMAIN, users[start:start + 1000])
    finally:
        await db.close()


async def wait_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"node did not start:\n{log.read_text()}") from None
            await asyncio.sleep(0.2)


@dataclass
class Figures:
    setup: str
    msgs_per_s: float
    cpu_us_per_msg: float
    redis_us_per_msg: float
    logins_per_s: float


async def measure(setup: str, ports: list[int], pids: list[int], redis_pid: int | None, pairs: int,
                  messages: int, logins: int) -> Figures:
    nodes = len(ports)
    conns = []
    for user in range(1, 2 * pairs + 1):
        pair = (user - 1) // 2
        node = (pair + (user - 1) % 2) % nodes  # the two of a pair on different nodes when there are several
        writer, want = await bound(ports[node], user)
        writer.write(b"<presence/>")
        conns.append((writer, want))
    await asyncio.sleep(2)  # presences handled, registries in step
    each = messages // pairs
    all_pids = pids + ([redis_pid] if redis_pid else [])
    before = {pid: cpu_seconds(pid) for pid in all_pids}
    started = time.perf_counter()
    receivers = [asyncio.create_task(receive(conns[2 * p + 1][1], each)) for p in range(pairs)]
    for start in range(0, each, 50):
        for p in range(pairs):
            to = f"user{2 * p + 2}@{DOMAIN}"
            conns[2 * p][0].write(b"".join(
                f"<message to='{to}' type='chat' id='m{i}'><body>hello {i}</body></message>".encode()
                for i in range(start, min(start + 50, each))))
        await asyncio.sleep(0.002)
    await asyncio.wait_for(asyncio.gather(*receivers), 600)
    elapsed = time.perf_counter() - started
    spent = {pid: cpu_seconds(pid) - before[pid] for pid in all_pids}
    total = each * pairs
    for writer, _want in conns:
        writer.close()
    await asyncio.sleep(1)
    # logins: fresh accounts, round robin over the nodes, 50 at a time
    first = 2 * pairs + 1
    sem = asyncio.Semaphore(50)

    async def one(user: int) -> None:
        async with sem:
            await login(ports[user % nodes], user)

    login_started = time.perf_counter()
    await asyncio.gather(*(one(u) for u in range(first, first + logins)))
    login_elapsed = time.perf_counter() - login_started
    redis_cpu = spent.get(redis_pid, 0.0) if redis_pid else 0.0
    return Figures(setup, total / elapsed, sum(spent.values()) / total * 1e6, redis_cpu / total * 1e6,
                   logins / login_elapsed)


async def run_setup(setup: str, args: argparse.Namespace, pg_url: str, redis_url: str, redis_pid: int | None,
                    folder: Path) -> Figures:
    nodes = {"sqlite": 1, "pg": 1, "cluster2": 2, "cluster3": 3}[setup]
    storage = "" if setup == "sqlite" else pg_url
    clustered = setup.startswith("cluster")
    work = folder / setup
    work.mkdir()
    total_users = 2 * args.pairs + args.logins + 10
    # SQLite: into the node's own database file; PostgreSQL: into the shared database
    await create_accounts(work / "state-n1" if not storage else work / "accounts", storage, total_users)
    processes: list[subprocess.Popen[bytes]] = []
    ports = []
    try:
        for n in range(1, nodes + 1):
            port = free_port()
            config = node_config(work, f"n{n}", port, storage, redis_url if clustered else "")
            log = work / f"n{n}.log"
            profiled = os.environ.get("PROFILE")  # PROFILE=/tmp/prof: cProfile output of each node there
            profile = ["-m", "cProfile", "-o", f"{profiled}.{setup}.n{n}"] if profiled else []
            processes.append(subprocess.Popen(
                [sys.executable, *profile, "-m", "appliance", "run", "--config", str(config)], cwd=ROOT,
                stdout=subprocess.DEVNULL, stderr=log.open("wb"),
                env={**os.environ, "PYTHONPATH": str(ROOT)}))
            await wait_port(port, processes[-1], log)
            ports.append(port)
        return await measure(setup, ports, [p.pid for p in processes], redis_pid if clustered else None,
                             args.pairs, args.messages, args.logins)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                print(f"  a node of {setup} did not stop within 60 s; killed", flush=True)
                process.kill()
                process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--logins", type=int, default=1_000)
    parser.add_argument("--setups", default="sqlite,pg,cluster2,cluster3")
    args = parser.parse_args()
    bin_dir = binaries()
    if bin_dir is None or shutil.which("redis-server") is None:
        sys.exit("needs Debian's postgresql and redis-server (apt-get install postgresql redis-server)")
    folder = Path(tempfile.mkdtemp(prefix="parlour-cluster-bench-"))
    results = []
    try:
        with running_postgres(bin_dir) as pg, running_redis() as redis:
            assert redis.process is not None
            for setup in args.setups.split(","):
                results.append(asyncio.run(run_setup(setup, args, pg.create_database(), redis.url,
                                                     redis.process.pid, folder)))
                print(f"  {setup}: done", flush=True)
    finally:
        if not os.environ.get("KEEP"):
            shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{args.pairs} pairs, {args.messages} messages, {args.logins} fresh logins per setup "
          f"({os.cpu_count()} CPUs, shared)\n")
    print(f"{'setup':<10} {'msg/s':>9} {'CPU µs/msg':>11} {'(Redis)':>8} {'logins/s':>9}")
    for f in results:
        print(f"{f.setup:<10} {f.msgs_per_s:>9.0f} {f.cpu_us_per_msg:>11.1f} {f.redis_us_per_msg:>8.1f} "
              f"{f.logins_per_s:>9.1f}")
    print("\nCPU µs/msg: all node processes and Redis together; in a cluster every message crosses nodes.")


if __name__ == "__main__":
    main()
