"""`parlour version`: print the version."""

from __future__ import annotations

import argparse
import platform
import sys

from appliance import __version__


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("version", help="print the version")
    parser.add_argument("-v", "--verbose", action="store_true", help="also print Python and OS versions")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(f"parlour {__version__}")
    if args.verbose:
        print(f"python {platform.python_version()} ({sys.executable})")
        print(f"platform {platform.platform()}")
    return 0
