"""`parlour run`: start the server in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import shlex
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from appliance import __version__
from appliance.certs.selfsigned import LocalCaError
from appliance.cli import _config
from appliance.util.logging import setup_logging

log = logging.getLogger(__name__)
T = TypeVar("T")


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run the server's main coroutine on uvloop where it is installed (Linux, macOS), else on asyncio's
    own loop; PARLOUR_EVENT_LOOP=asyncio forces the latter (for comparisons or a uvloop problem)."""
    if os.environ.get("PARLOUR_EVENT_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            log.info("event loop: uvloop %s", uvloop.__version__)
            return uvloop.run(main)
    return asyncio.run(main)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("run", help="run the server in the foreground")
    _config.add_config_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if _setup_mode_wanted(args):  # [console] no configuration yet: the first-run wizard
        return _run_setup_mode(_config.config_path(args))
    config = _config.load(args)
    setup_logging(config.logging)
    from appliance.app import serve  # imported late: `parlour version` needs none of it

    source = config.source or "built-in development defaults"
    hosts = ", ".join(host.name for host in config.hosts)
    log.info("Parlour %s starting: config %s, hosts %s, state %s", __version__, source, hosts,
             config.server.state_dir)
    try:
        run_event_loop(serve(config, ready=_print_hint))
    except KeyboardInterrupt:
        log.info("Parlour stopped (interrupted)")
    except LocalCaError as exc:  # the message names the file and the fix; a traceback would bury it
        log.error("%s", exc)
        return 1
    except PermissionError as exc:  # typically files left behind by a command run with sudo
        print(_permission_message(exc, config.server.state_dir), file=sys.stderr, flush=True)
        return 1
    return 0


def _permission_message(exc: PermissionError, state_dir: Path) -> str:
    """One line naming the file and the fix, instead of a traceback."""
    from appliance.platform.owner import ownership_fix, user_name

    path = Path(exc.filename) if exc.filename else state_dir
    return (f"Parlour cannot start: {path}: permission denied for user {user_name()}. "
            f"Fix: {ownership_fix(path, state_dir)}")


def _print_hint(server: object) -> None:
    """Tell a first-time user how to add an account and which client settings to use, with a command
    that works as printed (from a checkout: `.venv/bin/parlour`); a service gets no Ctrl+C advice."""
    from appliance.platform.invocation import parlour_command, under_service_manager

    config = server.config  # type: ignore[attr-defined]
    ports = server.ports  # type: ignore[attr-defined]
    host = config.hosts[0].name
    care = server.cert_care  # type: ignore[attr-defined]
    where = " --dev" if config.source is None else f" --config {shlex.quote(str(config.source))}"
    service = under_service_manager()
    command = parlour_command()
    if service and hasattr(os, "geteuid") and os.geteuid() != 0:
        command = f"sudo -u {shlex.quote(getpass.getuser())} {command}"  # the files belong to the service user
    print(
        f"\nParlour is running for {host}.\n"
        f"  Add a user:   {command} user add alice@{host}{where}\n"
        f"  Client:       JID alice@{host}, server 127.0.0.1, port {ports.get('c2s')} (STARTTLS)"
        f" or {ports.get('c2s_direct_tls')} (direct TLS)\n"
        f"  Certificate:  {care.summary(host)}\n"
        + ("" if service else "  Stop with Ctrl+C.\n"),
        flush=True,
    )


# -- [console] setup mode -----------------------------------------------------------------------------

def _setup_mode_wanted(args: argparse.Namespace) -> bool:
    """Not set up yet (no config file, or one without hosts, as the package ships it), and not a
    development run (which has built-in defaults). A file named with --config is what the user wants
    set up, even from a checkout: that is how to try the wizard with a state folder of one's choice."""
    from appliance.platform import paths

    if getattr(args, "dev", False):
        return False
    if args.config is None and paths.current_layout().dev:
        return False
    return _config.not_set_up(_config.config_path(args))


def _run_setup_mode(config_path: Path) -> int:
    from appliance.config.model import LoggingConfig

    setup_logging(LoggingConfig())
    state_dir = _config.setup_state_dir(config_path)
    return run_event_loop(_setup_then_serve(config_path, state_dir))


async def _setup_then_serve(config_path: Path, state_dir: Path) -> int:
    import contextlib
    import signal

    from appliance.app.setup import SetupMode

    mode = SetupMode(config_path=config_path, state_dir=state_dir)
    urls = await mode.start()
    why = "declares no host" if config_path.exists() else "does not exist"
    print(f"\nParlour is not set up yet ({config_path} {why}). Finish the setup in a browser:", flush=True)
    _print_urls(urls)
    print(f"  (the token is also in {mode.token.path})\n", flush=True)

    def announce(new: list[str]) -> None:
        print("\nThis machine's network address changed. Finish the setup in a browser:", flush=True)
        _print_urls(new)

    watching = asyncio.ensure_future(mode.announce_new_addresses(announce))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    stopping = asyncio.ensure_future(stop.wait())
    switched = asyncio.ensure_future(mode.switched.wait())
    try:
        await asyncio.wait({stopping, switched}, return_when=asyncio.FIRST_COMPLETED)
        if mode.failed is not None:
            return 1
        if mode.server is not None:
            log.info("setup done; the server runs with %s", config_path)
            await stop.wait()
    finally:
        stopping.cancel()
        switched.cancel()
        watching.cancel()
        await mode.stop()
    return 0


def _print_urls(urls: list[str]) -> None:
    for url in urls:
        print(f"  Open {url}", flush=True)
