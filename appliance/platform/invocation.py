"""How this process was started, for the hints it prints: under a service manager or by hand, and which
command line runs `parlour` again from where the user is (a checkout's venv, an install, a frozen build)."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path


def under_service_manager(env: Mapping[str, str] | None = None) -> bool:
    """Whether systemd started us (it sets INVOCATION_ID for every unit and JOURNAL_STREAM when the
    output goes to the journal): nobody is there to press Ctrl+C or to read hints about a terminal."""
    env = os.environ if env is None else env
    return bool(env.get("INVOCATION_ID") or env.get("JOURNAL_STREAM"))


def parlour_command(cwd: Path | None = None, path: str | None = None) -> str:
    """The shortest command that runs this same Parlour again, as a user would type it in `cwd`:
    `parlour` when that is what PATH finds, else the venv's script (`.venv/bin/parlour` from a checkout),
    else the frozen executable or `python -m appliance`."""
    cwd = Path.cwd() if cwd is None else cwd
    frozen = bool(getattr(sys, "frozen", False))
    script = Path(sys.executable) if frozen else Path(sys.executable).parent / _script_name()
    on_path = shutil.which("parlour", path=path)
    if on_path is not None and _same_file(Path(on_path), script):
        return "parlour"
    if script.exists():
        return shlex.quote(_relative(script, cwd))
    return f"{shlex.quote(sys.executable)} -m appliance"


def _script_name() -> str:
    return "parlour.exe" if sys.platform == "win32" else "parlour"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def _relative(target: Path, cwd: Path) -> str:
    """`target` below `cwd` as ./-less relative path (`.venv/bin/parlour`), else absolute. The venv's
    script is used as it is, not resolved: resolving would leave the venv for the system Python."""
    absolute = Path(os.path.abspath(target))
    try:
        relative = absolute.relative_to(Path(os.path.abspath(cwd)))
    except ValueError:
        return str(absolute)
    return str(relative) if len(relative.parts) > 1 else f"./{relative}"  # a bare name would search PATH


__all__ = ["parlour_command", "under_service_manager"]
