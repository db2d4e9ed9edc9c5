"""Start Parlour for ../shared/bench: PLAIN without TLS on a loopback port, accounts user1..userN / pass.

    python benchmarks/bench_server.py --port 15422 --users 10000 --state /tmp/bench-parlour

Accounts are created once (SCRAM keys, 4096 iterations) and kept in the state folder between runs.
Plaintext is allowed only because c2s.allow_plaintext_on_loopback is set: this is a bench setting.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from dataclasses import replace
from pathlib import Path

from appliance.app import serve
from appliance.catalog import default_config
from appliance.config.model import Config

PEER_PARITY_DISABLED = ("mam", "muc", "upload", "push", "external_services")


def bench_config(state: Path, port: int, domain: str) -> Config:
    cfg = default_config(state)
    # The peers in ../shared/bench run c2s IM modules only (no archive, no group chat, no uploads):
    # Parlour drops the same ones so the figures compare like with like.
    modules = replace(cfg.hosts[0].modules, disabled=PEER_PARITY_DISABLED)
    host = replace(cfg.hosts[0], name=domain, modules=modules)
    c2s = replace(
        cfg.c2s, port=port, direct_tls_port=0, interfaces=("127.0.0.1",), allow_plaintext_on_loopback=True,
        idle_timeout=3600.0,
    )
    limits = replace(
        cfg.limits, max_connections_per_ip=100_000, max_connections=100_000, auth_failures_per_ip=1_000_000,
        auth_failure_delay=0.0,
    )
    logging_cfg = replace(cfg.logging, level="warning")
    http = replace(cfg.http, enabled=False)  # the bench measures c2s; several bench servers may run at once
    return replace(cfg, hosts=(host,), c2s=c2s, limits=limits, logging=logging_cfg, http=http)


async def ensure_users(config: Config, count: int, prefix: str, password: str) -> None:
    from appliance.core.accounts import AccountService
    from appliance.storage.sqlite import Database
    from appliance.storage.stores.accounts import AccountStore

    db = await Database.open(config.server.state_dir / "parlour.db")
    try:
        service = AccountService(AccountStore(db), iterations=config.limits.scram_iterations, min_password_length=1)
        domain = config.hosts[0].name
        have = await service.count(domain)
        if have >= count:
            return
        started = time.monotonic()
        existing = set(await service.list(domain, limit=count + 10))
        todo = [(f"{prefix}{i}", password) for i in range(1, count + 1) if f"{prefix}{i}" not in existing]
        for start in range(0, len(todo), 1000):
            await service.create_many(domain, todo[start : start + 1000])
        print(f"created {len(todo)} accounts in {time.monotonic() - started:.1f} s", flush=True)
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=15422)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--domain", default="bench.local")
    parser.add_argument("--prefix", default="user")
    parser.add_argument("--password", default="pass")
    parser.add_argument("--state", type=Path, default=Path("/tmp/bench-parlour"))
    parser.add_argument("--no-uvloop", action="store_true")
    parser.add_argument("--accounts-only", action="store_true", help="create the accounts, then exit")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = bench_config(args.state, args.port, args.domain)
    args.state.mkdir(parents=True, exist_ok=True)
    asyncio.run(ensure_users(config, args.users, args.prefix, args.password))
    if args.accounts_only:
        return
    if not args.no_uvloop:
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
    print(f"parlour bench server pid {os.getpid()} on 127.0.0.1:{args.port}", flush=True)
    asyncio.run(serve(config))


if __name__ == "__main__":
    main()
