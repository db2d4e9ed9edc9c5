"""Where Parlour keeps its files: the one place that knows the platform's layout.

- Linux/BSD service: /etc/parlour/parlour.toml and /var/lib/parlour (FHS).
- Windows: %ProgramData%\\Parlour for both.  macOS: /Library/Application Support/Parlour for both.
- Development run: ./dev-state for both, chosen by PARLOUR_DEV=1 or, when Parlour is not installed
  (no system folder) and not running as root, automatically.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath, PureWindowsPath

CONFIG_NAME = "parlour.toml"
DEV_FOLDER = "dev-state"


@dataclass(frozen=True, slots=True)
class Layout:
    """The config file and state folder for one way of running Parlour."""

    config_path: PurePath
    state_dir: PurePath
    dev: bool


def is_dev_env(env: Mapping[str, str]) -> bool:
    """PARLOUR_DEV set to 1/true/yes asks for a development run."""
    return env.get("PARLOUR_DEV", "").strip().lower() in {"1", "true", "yes", "on"}


def layout(
    *,
    system: str,
    env: Mapping[str, str],
    is_root: bool,
    exists: Callable[[PurePath], bool],
    cwd: PurePath,
    dev: bool | None = None,
) -> Layout:
    """The layout for the given platform (`sys.platform` style) and process; pure, for tests."""
    if system == "win32":
        base: PurePath = PureWindowsPath(env.get("ProgramData") or r"C:\ProgramData") / "Parlour"
        installed = exists(base)
        system_layout = Layout(base / CONFIG_NAME, base, dev=False)
    elif system == "darwin":
        base = PurePath("/Library/Application Support/Parlour")
        installed = is_root or exists(base)
        system_layout = Layout(base / CONFIG_NAME, base, dev=False)
    else:
        etc = PurePath("/etc/parlour")
        installed = is_root or exists(etc)
        system_layout = Layout(etc / CONFIG_NAME, PurePath("/var/lib/parlour"), dev=False)
    if dev is None:
        dev = is_dev_env(env) or not installed
    if dev:
        folder = cwd / DEV_FOLDER
        return Layout(folder / CONFIG_NAME, folder, dev=True)
    return system_layout


def current_layout(dev: bool | None = None) -> Layout:
    """The layout of this process; `dev` forces (True) or forbids (False) a development run."""
    geteuid = getattr(os, "geteuid", None)
    return layout(
        system=sys.platform,
        env=os.environ,
        is_root=geteuid is not None and geteuid() == 0,
        exists=lambda p: Path(p).exists(),
        cwd=Path.cwd(),
        dev=dev,
    )


def default_config_path(dev: bool | None = None) -> Path:
    """Where `parlour` looks for its config file when none is given."""
    return Path(current_layout(dev).config_path)


def default_state_dir(dev: bool | None = None) -> Path:
    """Where the database, certificates and uploads live when the config does not say."""
    return Path(current_layout(dev).state_dir)


def is_dev_run() -> bool:
    """True when this process runs from a development folder rather than an installation."""
    return current_layout().dev


DATABASE_NAME = "parlour.db"


CONTROL_SOCKET = "control.sock"


def control_socket_path(state_dir: Path) -> Path:
    """Where a running server answers `parlour` commands about its live state (a Unix socket)."""
    return state_dir / CONTROL_SOCKET


CONTROL_PORT = "control-port.json"


def control_port_path(state_dir: Path) -> Path:
    """Where a server without a Unix socket (Windows) writes the loopback port and token it answers on."""
    return state_dir / CONTROL_PORT


def database_path(state_dir: Path) -> Path:
    """The SQLite database inside a state folder (never named after a host)."""
    return state_dir / DATABASE_NAME
