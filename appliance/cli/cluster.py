"""`parlour cluster status`: every node of the cluster this configuration joins, read from its Redis."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from appliance.cli import _config

if TYPE_CHECKING:
    from appliance.config.model import ClusterConfig

T = TypeVar("T")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    _config.add_config_arguments(common, dev=False)
    parser = subparsers.add_parser("cluster", help="show the nodes of the cluster ([cluster] in parlour.toml)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("status", parents=[common], help="every node: alive or not, its sessions, its heartbeat"
                       ).set_defaults(func=run)
    actions.add_parser("rooms", parents=[common], help="every chat room in use and the node running it"
                       ).set_defaults(func=run_rooms)


def _read(args: argparse.Namespace, read: Callable[[ClusterConfig], Coroutine[Any, Any, T]]) -> T | None:
    """What `read` finds in the cluster's Redis; None (with the reason on stderr) when it cannot."""
    config = _config.load(args)
    if not config.cluster.enabled:
        print(f"parlour cluster {args.action}: [cluster] enabled is false in this configuration: a standalone "
              "server", file=sys.stderr)
        return None
    try:
        return asyncio.run(read(config.cluster))
    except Exception as exc:  # redis-py's connection and response errors: say what, and where
        print(f"parlour cluster {args.action}: cannot read the cluster from "
              f"{config.cluster.redis_url.split('@')[-1]}: {exc}", file=sys.stderr)
        return None


def run(args: argparse.Namespace) -> int:
    from appliance.app.cluster import read_status

    nodes = _read(args, read_status)
    if nodes is None:
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


def run_rooms(args: argparse.Namespace) -> int:
    from appliance.app.cluster import read_rooms

    rooms = _read(args, read_rooms)
    if rooms is None:
        return 1
    print(f"{'ROOM':<50} {'OCCUPANTS':>9}  NODE")
    for room in rooms:
        print(f"{room.jid:<50} {room.occupants:>9}  {room.node}")
    print(f"{len(rooms)} rooms in use")
    return 0


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"
