"""`parlour federation list|status|enable|disable|block|unblock`: which other XMPP servers users here may
talk to, and the connections to them.

A change is written to parlour.toml ([federation], validated first); a running server notices the file
within a second and applies it without a restart (switched on or off, it opens or closes its
server-to-server listeners). `status` asks the running server over its control endpoint (app/control.py)
for its live connections, like `ejabberdctl connected_s2s` or Prosody's `s2s:show()`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import datetime

from appliance.app.control import ask
from appliance.cli import _config
from appliance.config import Config
from appliance.services.errors import ServiceError
from appliance.services.federation import FederationDesk, Link
from appliance.services.settings import Settings

ACTOR = "command line"  # who the audit log names for changes made here


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    _config.add_config_arguments(common)
    parser = subparsers.add_parser("federation", help="list, block or unblock other XMPP servers")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", parents=[common], help="show the federation settings and blocked domains"
                       ).set_defaults(func=run)
    status = actions.add_parser("status", parents=[common],
                                help="the running server's connections to other servers")
    status.add_argument("--json", action="store_true", help="print the answer as JSON")
    status.set_defaults(func=show_status)
    for name, text in (("enable", "talk to users of other XMPP servers (open the s2s listeners)"),
                       ("disable", "talk only to this server's users (close every s2s connection)")):
        actions.add_parser(name, parents=[common], help=text).set_defaults(func=run)
    for name, text in (("block", "refuse a remote domain (and its subdomains) both ways"),
                       ("unblock", "talk to a blocked domain again")):
        action = actions.add_parser(name, parents=[common], help=text)
        action.add_argument("domain", metavar="DOMAIN", help="a remote domain, e.g. spam.example")
        action.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = _config.load(args)
    if args.action == "list":
        print_view(FederationDesk(Settings(lambda: config, _written)))
        return 0
    if config.source is None:
        print(f"parlour federation {args.action}: a development run without a config file has nothing to change",
              file=sys.stderr)
        return 1
    desk = FederationDesk(Settings(lambda: config, _written))
    try:
        if args.action in ("enable", "disable"):
            asyncio.run(desk.switch(ACTOR, args.action == "enable"))
            print(f"federation {'on' if args.action == 'enable' else 'off'} in {config.source}; "
                  "a running server applies it within seconds")
            return 0
        domain = asyncio.run(desk.block(ACTOR, args.domain) if args.action == "block"
                             else desk.unblock(ACTOR, args.domain))
    except ServiceError as exc:
        print(f"parlour federation {args.action}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.action}ed {domain} in {config.source}; a running server applies it within seconds")
    return 0


def print_view(desk: FederationDesk) -> None:
    view = desk.view()
    if not view.enabled:
        print("federation: off (users here talk only to this server's users)")
    elif view.mode == "allowlist":
        print(f"federation: on, only with: {', '.join(view.allowed) or '(nobody)'}")
    else:
        print("federation: on, with every server except those blocked")
    print("refused stanzas: dropped silently" if view.silent_drop else "refused stanzas: the sender is told why")
    print("blocked domains:" + ("" if view.blocked else " none"))
    for domain in view.blocked:
        print(f"  {domain}")


COLUMNS = ("DOMAIN", "DIR", "STATE", "TLS", "AUTH", "BIDI", "SM", "QUEUED", "IN", "OUT", "SINCE")


def show_status(args: argparse.Namespace) -> int:
    config = _config.load(args)
    state_dir = config.server.state_dir
    try:
        status = asyncio.run(ask(state_dir, "federation status"))
    except (OSError, RuntimeError, ValueError) as exc:
        who = "an administrator" if os.name == "nt" else "its user or root"
        print(f"parlour federation status: no running server answers at {state_dir} ({exc}); is it running, "
              f"and are you {who}?", file=sys.stderr)
        return 1
    assert isinstance(status, dict)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    links = [Link.from_json(item) for item in status["links"]]
    print(f"federation: {'on' if status['enabled'] else 'off'}; {len(links)} connection(s)")
    if links:
        rows = [COLUMNS] + [_row(link) for link in links]
        widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
        for row in rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    counters = status.get("counters") or {}
    if counters:
        totals = (f"{name.replace('_', ' ')} {value}" for name, value in sorted(counters.items()))
        print("since start: " + ", ".join(totals))
    return 0


def _row(link: Link) -> tuple[str, ...]:
    tls = (link.tls or "none") + (" direct" if link.direct_tls else "")
    since = datetime.fromtimestamp(link.since).strftime("%Y-%m-%d %H:%M:%S")
    yes = {True: "yes", False: "no"}
    return (link.domain, link.direction, link.state, tls, link.auth, yes[link.bidi], yes[link.stream_management],
            str(link.queued), str(link.stanzas_in), str(link.stanzas_out), since)


async def _written(_config: Config) -> list[str]:
    """The file is written; the running server (if any) reloads it itself (app/config_watch)."""
    return []
