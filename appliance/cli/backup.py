"""`parlour backup [--output FILE]` and `parlour restore FILE [--force]`: the whole installation in one file.

`backup` runs beside a running server (SQLite's backup API takes one consistent copy while it writes);
`restore` is for a stopped server on a fresh install.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from appliance.cli import _config
from appliance.platform import paths


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = subparsers.add_parser("backup", help="write the database, uploads, certificates and config to one file")
    _config.add_config_arguments(backup)
    backup.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="where to write it (default: ./parlour-backup-DATE.tar.gz)")
    backup.set_defaults(func=run_backup)
    restore = subparsers.add_parser("restore", help="restore a backup onto a fresh install (server stopped)")
    _config.add_config_arguments(restore)
    restore.add_argument("file", type=Path, metavar="FILE", help="a file made by `parlour backup`")
    restore.add_argument("--force", action="store_true",
                         help="replace an installation that has accounts (its state is kept aside, renamed)")
    restore.set_defaults(func=run_restore)


def run_backup(args: argparse.Namespace) -> int:
    from appliance.services.backup import BackupError, default_name, make_backup

    config = _config.load(args)
    now = datetime.now(UTC)
    output = args.output if args.output is not None else Path(default_name(now))
    try:
        result = make_backup(config, output, now=now)
    except BackupError as exc:
        print(f"parlour backup: {exc}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{n} {what}" for what, n in result.manifest.counts.items())
    print(f"backup written to {result.path} ({result.size:,} bytes): {counts}")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    from appliance.services.backup import BackupError, restore_backup

    dev = bool(getattr(args, "dev", False)) or paths.current_layout().dev
    try:
        result = restore_backup(args.file, _config.config_path(args),
                                paths.default_state_dir(dev=True if dev else None), force=args.force)
    except BackupError as exc:
        print(f"parlour restore: {exc}", file=sys.stderr)
        return 1
    manifest = result.manifest
    print(f"restored the backup of {manifest.created} (Parlour {manifest.parlour_version}, "
          f"hosts {', '.join(manifest.hosts)}) into {result.state_dir}, config {result.config_path}")
    for path in result.set_aside:
        print(f"kept what was there before as {path}")
    print("start the server to use it (the database schema is brought up to date on start)")
    return 0
