"""`parlour user add|del|passwd JID`, `parlour user list HOST`: manage accounts.

Passwords never come from the command line (other users can read it): they are asked for twice on a
terminal, or read as one line from standard input (`echo "$PW" | parlour user add ...`).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from appliance.cli import _config
from appliance.config import Config
from appliance.xmpp.jid import JID, JIDError

_PAGE = 1000
ACTOR = "command line"  # who the audit log names for changes made here


class UserCommandError(Exception):
    """A failure to report in one line; `code` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    _config.add_config_arguments(common)
    parser = subparsers.add_parser("user", help="add, delete, list accounts or change a password")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, help_text in (("add", "create an account (password from a prompt or stdin)"),
                            ("del", "delete an account and its data"),
                            ("passwd", "change an account's password (from a prompt or stdin)")):
        action = actions.add_parser(name, parents=[common], help=help_text)
        action.add_argument("jid", metavar="JID", help="the account, e.g. alice@example.org")
        action.set_defaults(func=run)
    listing = actions.add_parser("list", parents=[common], help="list the accounts of a host")
    listing.add_argument("host", metavar="HOST", help="a host from the config, e.g. example.org")
    listing.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = _config.load(args)
    try:
        asyncio.run(_run(args, config))
    except UserCommandError as exc:
        print(f"parlour user {args.action}: {exc}", file=sys.stderr)
        return exc.code
    return 0


async def _run(args: argparse.Namespace, config: Config) -> None:
    from appliance.app.offline import offline_services
    from appliance.services.errors import Conflict, NotFound, Refused

    if args.action == "list":
        host = _configured_host(config, args.host)
        async with offline_services(config) as services:
            offset = 0
            while page := await services.accounts.page(host, limit=_PAGE, offset=offset):
                for username in page:
                    print(f"{username}@{host}")
                offset += len(page)
        return
    jid = _account_jid(config, args.jid)
    password = read_password() if args.action in ("add", "passwd") else ""
    async with offline_services(config) as services:
        accounts = services.accounts
        try:
            if args.action == "add":
                await accounts.create(ACTOR, str(jid), password)
                print(f"created {jid}")
            elif args.action == "passwd":
                await accounts.reset_password(ACTOR, str(jid), password)
                print(f"changed the password of {jid}")
            else:
                await accounts.delete(ACTOR, str(jid))
                print(f"deleted {jid}")
        except Conflict:
            raise UserCommandError(f"{jid} already exists; use `parlour user passwd {jid}` to change "
                                   "its password") from None
        except NotFound:
            raise UserCommandError(f"{jid} does not exist (see `parlour user list {jid.domain}`)") from None
        except Refused as exc:
            raise UserCommandError(f"password refused: {exc.reason}") from None


def _configured_host(config: Config, written: str) -> str:
    try:
        host = JID.parse(written).domain
    except JIDError:
        raise UserCommandError(f"{written!r} is not a domain name", code=2) from None
    if config.host(host) is None:
        hosts = ", ".join(h.name for h in config.hosts)
        raise UserCommandError(f"{host} is not a host of this server (hosts: {hosts}); add "
                               f'[hosts."{host}"] to {config.source or "the config file"} first')
    return host


def _account_jid(config: Config, written: str) -> JID:
    try:
        jid = JID.parse(written)
    except JIDError as exc:
        raise UserCommandError(f"{written!r} is not a valid JID: {exc}", code=2) from None
    if jid.local is None or jid.resource is not None:
        raise UserCommandError(f"{written!r} is not an account address like alice@example.org", code=2)
    _configured_host(config, jid.domain)
    return jid


def read_password() -> str:
    """The new password: asked twice on a terminal, else the first line of standard input."""
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != password:
            raise UserCommandError("the two passwords differ")
    else:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        raise UserCommandError("empty password")
    return password
