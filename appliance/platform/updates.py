"""Whether a newer Parlour package is available, as apt sees it (the VM image and the .deb).

The source of truth is the one the VM's console banner reads (packaging/vm/parlour-banner): apt's
policy for the package `parlour`, its installed version against apt's candidate from the package lists
(Parlour's own repository, docs/packages.md). `apt-cache policy` needs no root and no network: it reads
the lists `apt-get update` (apt's daily timer) left. The answer is cached and refreshed in the background
(`refresh`, run every REFRESH_INTERVAL by the server), so a page only ever reads `available`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PACKAGE = "parlour"
DEB_PREFIX = Path("/usr/lib/parlour")  # where the .deb (and so the VM) installs the one-folder build
REFRESH_INTERVAL = 600.0  # seconds; apt's own timer updates the lists twice a day
TIMEOUT = 60.0  # apt-cache rebuilds its cache in memory when the lists changed: slow on a small VM
APPLY = "apt-get update && apt-get install parlour"


@dataclass(frozen=True, slots=True)
class Update:
    """A newer version apt would install, and the command that installs it (as root)."""

    installed: str
    candidate: str
    command: str = APPLY


def parse_policy(text: str) -> tuple[str | None, str | None]:
    """(installed, candidate) from `LC_ALL=C apt-cache policy PACKAGE`; None for "(none)" or missing."""
    found: dict[str, str | None] = {"Installed": None, "Candidate": None}
    for line in text.splitlines():
        key, _, value = line.strip().partition(":")
        if key in found and found[key] is None:
            value = value.strip()
            found[key] = value if value and value != "(none)" else None
    return found["Installed"], found["Candidate"]


class UpdateCheck:
    """The cached answer to "is a newer Parlour available?"; `apt_options` (`-o Dir=...`) point apt
    elsewhere, for tests."""

    def __init__(self, *, apt_options: Sequence[str] = (), package: str = PACKAGE) -> None:
        self.apt_options = tuple(apt_options)
        self.package = package
        self.available: Update | None = None
        self._running: asyncio.Task[None] | None = None

    @classmethod
    def for_this_install(cls) -> UpdateCheck | None:
        """A check when this process is the .deb's build (under DEB_PREFIX) and apt is there; else None
        (a checkout, the portable executable, Windows: their updates do not come from apt)."""
        if not getattr(sys, "frozen", False) or shutil.which("apt-cache") is None:
            return None
        try:
            Path(sys.executable).resolve().relative_to(DEB_PREFIX)
        except ValueError:
            return None
        return cls()

    async def refresh(self) -> None:
        """Ask apt again (one at a time; a failure keeps the previous answer and is logged)."""
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._ask())
        await asyncio.shield(self._running)

    async def _ask(self) -> None:
        try:
            policy = await self._run("apt-cache", *self.apt_options, "policy", self.package)
        except (OSError, TimeoutError) as exc:
            log.warning("update check: apt-cache policy %s failed: %s", self.package, exc)
            return
        installed, candidate = parse_policy(policy)
        newer = None
        if installed and candidate and candidate != installed and await self._newer(candidate, installed):
            newer = Update(installed, candidate)
        if newer != self.available and newer is not None:
            log.info("update check: Parlour %s is available (installed: %s)", newer.candidate, newer.installed)
        self.available = newer

    async def _newer(self, candidate: str, installed: str) -> bool:
        """Debian's version order (`dpkg --compare-versions`): apt may prefer an older, pinned version."""
        try:
            await self._run("dpkg", "--compare-versions", candidate, "gt", installed)
        except (OSError, TimeoutError):
            return False
        return True

    @staticmethod
    async def _run(*argv: str) -> str:
        """The command's output; OSError when it fails."""
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, env={**os.environ, "LC_ALL": "C"},
        )  # fmt: skip
        try:
            async with asyncio.timeout(TIMEOUT):
                out, _ = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        if process.returncode:
            raise OSError(f"{argv[0]} exited with {process.returncode}")
        return out.decode("utf-8", "replace")


__all__ = ["APPLY", "PACKAGE", "REFRESH_INTERVAL", "Update", "UpdateCheck", "parse_policy"]
