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
        asyncio.run(serve(config, ready=_print_hint))
    except KeyboardInterrupt:
        log.info("Parlour stopped (interrupted)")
    return 0


def _print_hint(server: object) -> None:
    """Tell a first-time user how to add an account and which client settings to use."""
    config = server.config  # type: ignore[attr-defined]
    ports = server.ports  # type: ignore[attr-defined]
    host = config.hosts[0].name
    ca = config.server.state_dir / "certs" / "ca.pem"
    dev = " --dev" if config.source is None else f" --config {config.source}"
    print(
        f"\nParlour is running for {host}.\n"
        f"  Add a user:   parlour user add alice@{host}{dev}   (or: python -m appliance user add ...)\n"
        f"  Client:       JID alice@{host}, server 127.0.0.1, port {ports.get('c2s')} (STARTTLS)"
        f" or {ports.get('c2s_direct_tls')} (direct TLS)\n"
        f"  Certificate:  self-signed by a local CA; trust {ca} or accept it in the client\n"
        "  Stop with Ctrl+C.\n",
        flush=True,
    )
