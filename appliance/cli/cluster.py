"""`parlour cluster status`: every node of the cluster this configuration joins, read from its Redis."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from appliance.cli import _config


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    _config.add_config_arguments(common, dev=False)
    parser = subparsers.add_parser("cluster", help="show the nodes of the cluster ([cluster] in parlour.toml)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("status", parents=[common], help="every node: alive or not, its sessions, its heartbeat"
                       ).set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from appliance.app.cluster import read_status

    config = _config.load(args)
    if not config.cluster.enabled:
        print("parlour cluster status: [cluster] enabled is false in this configuration: a standalone server",
              file=sys.stderr)
        return 1
    try:
        nodes = asyncio.run(read_status(config.cluster))
    except Exception as exc:  # redis-py's connection and response errors: say what, and where
        print(f"parlour cluster status: cannot read the cluster from {config.cluster.redis_url.split('@')[-1]}: "
              f"{exc}", file=sys.stderr)
        return 1
    if not nodes:
        print("No node is registered (none is running).")
        return 1
    print(f"{'NODE':<20} {'STATE':<6} {'SESSIONS':>8}  {'HEARTBEAT':>9}  {'UP':>9}  PID      VERSION")
    now = time.time()
    for node in nodes:
        beat = f"{node.seconds_since_heartbeat:.1f} s ago" if node.seconds_since_heartbeat is not None else "none"
        up = _duration(now - node.started) if node.started else "?"
        print(f"{node.name:<20} {'up' if node.alive else 'DEAD':<6} {node.sessions:>8}  {beat:>9}  {up:>9}  "
              f"{node.pid:<8} {node.version}")
    alive = sum(n.alive for n in nodes)
    print(f"{alive} of {len(nodes)} nodes alive, {sum(n.sessions for n in nodes)} sessions")
    return 0 if alive == len(nodes) else 1


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"
