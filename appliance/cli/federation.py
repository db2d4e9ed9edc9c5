"""`parlour federation list|enable|disable|block|unblock`: which other XMPP servers users here may talk to.

The change is written to parlour.toml ([federation], validated first); a running server notices the
file within a second and applies it without a restart (switched on or off, it opens or closes its
server-to-server listeners).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from appliance.cli import _config
from appliance.config import Config
from appliance.services.errors import ServiceError
from appliance.services.federation import FederationDesk
from appliance.services.settings import Settings

ACTOR = "command line"  # who the audit log names for changes made here


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    _config.add_config_arguments(common)
    parser = subparsers.add_parser("federation", help="list, block or unblock other XMPP servers")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", parents=[common], help="show the federation settings and blocked domains"
                       ).set_defaults(func=run)
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


async def _written(_config: Config) -> list[str]:
    """The file is written; the running server (if any) reloads it itself (app/config_watch)."""
    return []
