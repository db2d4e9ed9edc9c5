"""`parlour run`: start the server in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import logging

from appliance import __version__
from appliance.cli import _config
from appliance.util.logging import setup_logging

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("run", help="run the server in the foreground")
    _config.add_config_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = _config.load(args)
    setup_logging(config.logging)
    from appliance.core.server import serve  # imported late: `parlour version` needs none of it

    source = config.source or "built-in development defaults"
    hosts = ", ".join(host.name for host in config.hosts)
    log.info("Parlour %s starting: config %s, hosts %s, state %s", __version__, source, hosts,
             config.server.state_dir)
    try:
        asyncio.run(serve(config))
    except KeyboardInterrupt:
        log.info("Parlour stopped (interrupted)")
    return 0
