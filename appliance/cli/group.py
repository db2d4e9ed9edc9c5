"""`parlour group list|add|del|rename|members|join|leave HOST ...`: manage shared-roster groups, whose members
see each other on their rosters with presence.

Works on the database directly, like `parlour user`: run it while the server is stopped (the admin console
changes groups through the running server, which tells online members at once).
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
    parser = subparsers.add_parser("group", help="shared-roster groups: members see each other automatically")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", parents=[common], help="list the groups and their members").set_defaults(func=run)
    add = actions.add_parser("add", parents=[common], help="create a group")
    add.add_argument("group", metavar="GROUP", help="its name, shown as the roster group")
    add.add_argument("members", metavar="ACCOUNT", nargs="*", help="members, e.g. alice or alice@example.org")
    add.add_argument("--everyone", action="store_true", help="every account of the host is a member")
    add.add_argument("--directory-group", default="", metavar="DN",
                     help="the members of this directory (LDAP) group are members")
    add.set_defaults(func=run)
    delete = actions.add_parser("del", parents=[common], help="delete a group")
    delete.add_argument("group", metavar="GROUP")
    delete.set_defaults(func=run)
    rename = actions.add_parser("rename", parents=[common], help="rename a group")
    rename.add_argument("group", metavar="GROUP")
    rename.add_argument("new_name", metavar="NEW_NAME")
    rename.set_defaults(func=run)
    for name, help_text in (("join", "add accounts to a group"), ("leave", "remove accounts from a group")):
        action = actions.add_parser(name, parents=[common], help=help_text)
        action.add_argument("group", metavar="GROUP")
        action.add_argument("members", metavar="ACCOUNT", nargs="+")
        action.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return _config.run_for_host(args, "group", _run)


async def _run(args: argparse.Namespace, config: Config, host: str) -> None:
    from appliance.app.offline import offline_services

    async with offline_services(config) as services:
        desk = services.groups
        if args.action == "list":
            for group in await desk.groups(host):
                print(f"{group.name}\t{group.kind}\t{', '.join(group.members) or '-'}")
        elif args.action == "add":
            name = await desk.create(ACTOR, host, args.group, everyone=args.everyone,
                                     directory_group=args.directory_group, members=args.members)
            print(f"created group {name}")
        elif args.action == "del":
            await desk.delete(ACTOR, host, args.group)
            print(f"deleted group {args.group}")
        elif args.action == "rename":
            name = await desk.rename(ACTOR, host, args.group, args.new_name)
            print(f"renamed {args.group} to {name}")
        else:
            change = desk.add_member if args.action == "join" else desk.remove_member
            for member in args.members:
                await change(ACTOR, host, args.group, member)
            print(f"{'added to' if args.action == 'join' else 'removed from'} {args.group}: "
                  f"{', '.join(args.members)}")
