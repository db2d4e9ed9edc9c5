"""The `parlour` command: argparse front end dispatching to one module per subcommand."""

from __future__ import annotations

import argparse
import sys

from appliance import __version__
from appliance.cli import (
    backup,
    cert,
    check,
    cluster,
    db,
    federation,
    group,
    invite,
    portable,
    room,
    run,
    service,
    setup,
    user,
    version,
)
from appliance.config import ConfigError

SUBCOMMANDS = (run, cert, setup, check, user, invite, room, group, federation, backup, portable, db, cluster, version,
               service)
"""Subcommand modules, each with `add_parser(subparsers)` and `run(args) -> int`."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parlour", description="Parlour XMPP server.")
    parser.add_argument("--version", action="version", version=f"parlour {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; returns 0 when it worked, 1 when it failed, 2 for usage or config errors."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print("The configuration has problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
