"""`parlour db migrate --from sqlite:PATH --to postgresql://…`: move an installation's data to PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

SQLITE_PREFIX = "sqlite:"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("db", help="move the data to another database")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    migrate = actions.add_parser(
        "migrate", help="copy every table of the SQLite file into an empty PostgreSQL database",
        description="Copies in one PostgreSQL transaction and compares the row counts of every table; "
        "stop the server first (writes made during the copy are not part of it), then set "
        "[storage] url in parlour.toml.")
    migrate.add_argument("--from", dest="source", required=True, metavar="sqlite:PATH",
                         help="the SQLite database, e.g. sqlite:/var/lib/parlour/parlour.db")
    migrate.add_argument("--to", dest="target", required=True, metavar="URL",
                         help="the PostgreSQL database, e.g. postgresql://parlour@db.example.org/parlour")
    migrate.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from appliance.app.storage import move_to_postgresql

    if not args.source.startswith(SQLITE_PREFIX):
        print(f"parlour db migrate: --from must be sqlite:PATH, not {args.source!r}")
        return 2
    if not args.target.startswith(("postgresql://", "postgres://")):
        print(f"parlour db migrate: --to must be a postgresql:// URL, not {args.target!r}")
        return 2
    source = Path(args.source.removeprefix(SQLITE_PREFIX)).expanduser()
    try:
        counts = asyncio.run(move_to_postgresql(source, args.target))
    except Exception as exc:  # TransferError, MigrationError, a psycopg error: nothing was committed
        print(f"parlour db migrate: failed, nothing was copied: {exc}")
        return 1
    width = max((len(c.table) for c in counts), default=5)
    print(f"{'table':<{width}}  {'sqlite':>8}  {'postgresql':>10}")
    for count in counts:
        print(f"{count.table:<{width}}  {count.source:>8}  {count.target:>10}")
    print(f"copied {sum(c.target for c in counts)} rows in {len(counts)} tables; every count matches.")
    print('Now set [storage] url = "<that URL>" in parlour.toml and start the server.')
    return 0
