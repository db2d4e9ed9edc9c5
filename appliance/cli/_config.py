"""The `--config`/`--dev` options shared by subcommands, and how they pick a configuration."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path

from appliance.catalog import default_config, load_config
from appliance.config import Config, ConfigError
from appliance.platform import paths


def add_config_arguments(parser: argparse.ArgumentParser, *, dev: bool = True) -> None:
    parser.add_argument(
        "-c", "--config", type=Path, metavar="PATH",
        help=f"config file (default: {paths.default_config_path()})",
    )
    if dev:
        parser.add_argument(
            "--dev", action="store_true",
            help=f"development run: state and config in ./{paths.DEV_FOLDER}, host localhost",
        )


def config_path(args: argparse.Namespace) -> Path:
    """The file named by --config, else the platform default."""
    if args.config is not None:
        return Path(args.config)
    return paths.default_config_path(dev=True if getattr(args, "dev", False) else None)


NOT_SET_UP_HINT = "open the wizard (URL in `journalctl -u parlour`) or run `parlour setup`"


def _pending(path: Path) -> dict[str, object] | None:
    """The file's TOML when it is missing ({}) or declares no virtual host; else None.

    A file that cannot be read or parsed counts as set up, so that loading it reports the error.
    """
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return None if data.get("hosts") else data


def not_set_up(path: Path) -> bool:
    """True when `path` is missing or declares no virtual host (the packaged, commented-out file)."""
    return _pending(path) is not None


def setup_state_dir(path: Path) -> Path:
    """The state folder for setup mode: [server] state_dir of a not-set-up file, else the platform's."""
    server = (_pending(path) or {}).get("server")
    state_dir = server.get("state_dir") if isinstance(server, dict) else None
    if isinstance(state_dir, str) and state_dir:
        return (path.absolute().parent / state_dir).absolute()
    return paths.default_state_dir()


def load(args: argparse.Namespace) -> Config:
    """Load the chosen config file; in a development run without one, the built-in default.

    Raises `ConfigError` when the file is invalid, or missing outside a development run.
    """
    path = config_path(args)
    dev = bool(getattr(args, "dev", False)) or paths.current_layout().dev
    state_dir = paths.default_state_dir(dev=True if dev else None)
    if args.config is None and dev and not path.exists():
        return default_config(state_dir)
    if not path.exists():
        raise ConfigError([
            f"{path}: no such file; create it (see examples/parlour.toml) or pass --config PATH"
            + ("" if args.config is not None else ", or use --dev for a development run")
        ])
    return load_config(path, default_state_dir=state_dir)


class CommandError(Exception):
    """A failure of a subcommand, reported in one line (`parlour room create: ...`); exit status 1."""


def run_for_host(args: argparse.Namespace, command: str,
                 job: Callable[[argparse.Namespace, Config, str], Awaitable[None]]) -> int:
    """Load the config, check that args.host is one of its hosts, run `job(args, config, host)`; a
    CommandError or a service's refusal (ServiceError) becomes one line on stderr and exit status 1."""
    from appliance.services.errors import ServiceError

    config = load(args)
    try:
        host = config.host(args.host)
        if host is None:
            raise CommandError(f"{args.host} is not a host of this server")
        asyncio.run(job(args, config, host.name))
    except (CommandError, ServiceError) as exc:
        print(f"parlour {command} {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0
