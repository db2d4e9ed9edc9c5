"""`parlour invite create|list|revoke`: invitation links (XEP-0401) from the command line.

The invitations live in the database, so a link made here works on a running server at once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from appliance.cli import _config
from appliance.config import Config
from appliance.config.spec import Duration, format_duration

ACTOR = "command line"  # who the audit log names
LIFETIME = Duration(60, 365 * 86400.0)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    _config.add_config_arguments(common)
    parser = subparsers.add_parser("invite", help="make, list or revoke invitation links")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", parents=[common], help="make an invitation link and print it")
    create.add_argument("--host", default="", help="the domain the account is made on (default: the first)")
    create.add_argument("--uses", type=int, default=1, help="how many accounts it may make (default 1)")
    create.add_argument("--expires", metavar="DURATION", default="",
                        help='how long it stays valid, e.g. "2h" or "7d" (default: console.invitation_lifetime)')
    create.add_argument("--contact", default="", metavar="JID",
                        help="an account of the host that every invitee gets as a mutual contact")
    create.add_argument("--group", action="append", default=[], metavar="NAME",
                        help="a contact group for that contact (repeatable)")
    create.add_argument("--username", default="", help="the one account name it may make (reserved until used)")
    create.set_defaults(func=run)
    actions.add_parser("list", parents=[common], help="list invitations").set_defaults(func=run)
    revoke = actions.add_parser("revoke", parents=[common], help="delete an invitation")
    revoke.add_argument("id", metavar="ID", help="the invitation's ID (see `parlour invite list`)")
    revoke.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from appliance.services.errors import ServiceError

    config = _config.load(args)
    try:
        asyncio.run(_run(args, config))
    except ServiceError as exc:
        print(f"parlour invite {args.action}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # a duration that does not parse
        print(f"parlour invite {args.action}: {exc}", file=sys.stderr)
        return 2
    return 0


async def _run(args: argparse.Namespace, config: Config) -> None:
    from appliance.app.offline import offline_services
    from appliance.services.invitations import InvitationTerms

    async with offline_services(config) as services:
        invitations = services.invitations
        if args.action == "create":
            lifetime = _lifetime(args.expires) if args.expires else None
            terms = InvitationTerms(host=args.host, uses=args.uses, lifetime=lifetime, contact=args.contact,
                                    groups=tuple(args.group), username=args.username)
            token, record = await invitations.create(ACTOR, args.host or None, terms=terms)
            print(invitations.link(record, token))
            print(invitations.uri(record, token))
            left = format_duration(round((record.expires - time.time()) / 60) * 60)
            print(f"id {record.id}, {record.max_uses} use(s), valid for {left}")
        elif args.action == "list":
            now = time.time()
            for i in await invitations.list():
                state = "valid" if i.valid(now) else ("used up" if i.uses >= i.max_uses else "expired")
                used = f" by {', '.join(i.used_by)}" if i.used_by else ""
                print(f"{i.id}  {i.host}  {i.uses}/{i.max_uses} used{used}  {state}  (made by {i.creator})")
        else:
            await invitations.revoke(ACTOR, args.id)
            print(f"revoked {args.id}")


def _lifetime(text: str) -> float:
    try:
        return LIFETIME.convert(text)
    except (TypeError, ValueError):
        raise ValueError(f"--expires {text!r}: {LIFETIME.allowed()}") from None
