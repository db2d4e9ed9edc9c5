"""`parlour export --xep0227 FILE` and `parlour import --xep0227 FILE|FOLDER`: accounts to and from other servers.

The XEP-0227 format is what Prosody (prosody-migrator to mod_storage_xep0227) and ejabberd
(`ejabberdctl export_piefxis`) write. Import with the server stopped: a running server keeps rosters and
sessions in memory and would not see the imported data until restarted. Export works beside a running
server (each account is read in one consistent snapshot).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from appliance.cli import _config


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = subparsers.add_parser("export", help="write every account to a XEP-0227 file (passwords as SCRAM keys)")
    _config.add_config_arguments(export)
    export.add_argument("--xep0227", type=Path, required=True, metavar="FILE",
                        help="the file to write (readable by you only: it holds password keys)")
    export.add_argument("--host", action="append", default=[], metavar="HOST",
                        help="only this host (repeat for several; default: every host)")
    export.set_defaults(func=run_export)
    imported = subparsers.add_parser(
        "import", help="add the accounts of a XEP-0227 file or folder (from Prosody, ejabberd or Parlour)",
        description="Adds each user in one transaction: the account with its password (SCRAM keys), contacts, "
        "vCard, private XML, offline messages, PEP nodes and archive. Existing accounts keep their password and "
        "data; only what they lack is added, so importing twice is harmless. Stop the server first.")
    _config.add_config_arguments(imported)
    imported.add_argument("--xep0227", type=Path, required=True, metavar="FILE|FOLDER",
                          help="a XEP-0227 file, or a folder of them (Prosody's data folder, ejabberd's export folder)")
    imported.set_defaults(func=run_import)


def run_export(args: argparse.Namespace) -> int:
    from appliance.app.offline import offline_services
    from appliance.services.portable import PortableError

    config = _config.load(args)

    async def export() -> str:
        async with offline_services(config) as services:
            summary = await services.portable.export(args.xep0227, tuple(args.host) or None)
            return f"exported {summary.users} accounts of {', '.join(summary.hosts)} to {summary.path}"

    try:
        print(asyncio.run(export()))
    except PortableError as exc:
        print(f"parlour export: {exc}", file=sys.stderr)
        return 1
    return 0


def run_import(args: argparse.Namespace) -> int:
    from appliance.app.offline import offline_services
    from appliance.services.portable import ImportReport, PortableError

    config = _config.load(args)

    async def import_() -> ImportReport:
        async with offline_services(config) as services:
            return await services.portable.import_path(args.xep0227)

    try:
        report = asyncio.run(import_())
    except PortableError as exc:
        print(f"parlour import: {exc}", file=sys.stderr)
        return 1
    print("\n".join(report.lines()))
    return 1 if report.count("failed") else 0
