"""`parlour room list|create|destroy|owners HOST ...`: manage chat rooms of a host's MUC service.

Works on the database directly, like `parlour user`: run it while the server is stopped (a running
server keeps its rooms in memory; the admin console changes rooms through the live service).
"""

from __future__ import annotations

import argparse

from appliance.cli import _config
from appliance.config import Config

ACTOR = "command line"  # who the audit log names for changes made here


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    _config.add_config_arguments(common)
    common.add_argument("host", metavar="HOST", help="a host from the config, e.g. example.org")
    parser = subparsers.add_parser("room", help="list, create, destroy chat rooms or change their owners")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", parents=[common], help="list the stored rooms").set_defaults(func=run)
    create = actions.add_parser("create", parents=[common], help="create a persistent room")
    create.add_argument("room", metavar="ROOM", help="the room's name (its JID's local part)")
    create.add_argument("owners", metavar="OWNER", nargs="+", help="owner accounts, e.g. alice@example.org")
    create.add_argument("--title", default="", help="the room's display name")
    create.add_argument("--hidden", action="store_true", help="do not list the room publicly")
    create.set_defaults(func=run)
    destroy = actions.add_parser("destroy", parents=[common], help="destroy a room")
    destroy.add_argument("room", metavar="ROOM")
    destroy.set_defaults(func=run)
    owners = actions.add_parser("owners", parents=[common], help="replace a room's owners")
    owners.add_argument("room", metavar="ROOM")
    owners.add_argument("owners", metavar="OWNER", nargs="+")
    owners.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return _config.run_for_host(args, "room", _run)


async def _run(args: argparse.Namespace, config: Config, host: str) -> None:
    from appliance.app.offline import offline_services

    async with offline_services(config) as services:
        service = services.room_services[host]
        rooms = services.rooms
        if args.action == "list":
            for room in await rooms.rooms():
                if not room.jid.endswith(f"@{service}"):
                    continue
                visibility = "public" if room.public else "hidden"
                print(f"{room.jid}\t{room.name or '-'}\t{visibility}\towners: {', '.join(room.owners)}")
        elif args.action == "create":
            jid = await rooms.create(ACTOR, f"{args.room}@{service}", args.owners, title=args.title,
                                     public=not args.hidden)
            print(f"created {jid}")
        elif args.action == "destroy":
            await rooms.destroy(ACTOR, f"{args.room}@{service}")
            print(f"destroyed {args.room}@{service}")
        else:
            await rooms.set_owners(ACTOR, f"{args.room}@{service}", args.owners)
            print(f"owners of {args.room}@{service}: {', '.join(args.owners)}")
