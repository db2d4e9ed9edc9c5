"""The `--config`/`--dev` options shared by subcommands, and how they pick a configuration."""

from __future__ import annotations

import argparse
from pathlib import Path

from appliance.config import Config, ConfigError, default_config, load_config
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
