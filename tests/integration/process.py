"""The real server as a child process (`python -m appliance run`) and the `parlour` command beside it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
TIMEOUT = 30.0


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PARLOUR_DEV"}
    env["PYTHONPATH"] = str(ROOT)
    return env


def parlour(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        input=stdin, capture_output=True, text=True, cwd=ROOT, env=environment(), timeout=120,
    )  # fmt: skip


class ServerProcess:
    """`python -m appliance run` as a child process, ready once it prints its start-up hint."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.process: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "appliance", "run", "--config", str(self.config),
                stdout=asyncio.subprocess.PIPE, stderr=log, cwd=ROOT, env=environment(),
            )  # fmt: skip
        assert self.process.stdout is not None
        async with asyncio.timeout(TIMEOUT):
            while True:
                line = await self.process.stdout.readline()
                assert line, f"the server exited before it was ready:\n{self.log.read_text()}"
                if line.startswith(b"Parlour is running"):
                    break
        self._drain = asyncio.create_task(self._discard(self.process.stdout))

    @staticmethod
    async def _discard(stream: asyncio.StreamReader) -> None:
        while await stream.read(65_536):
            pass

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, no buffer is flushed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        assert await self.process.wait() == -signal.SIGKILL
        if self._drain is not None:
            await self._drain
        self.process = None

    async def stop(self) -> None:
        if self.process is None:
            return
        if self.process.returncode is None:  # a test may have sent SIGTERM itself
            self.process.terminate()
        try:
            async with asyncio.timeout(TIMEOUT):
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self._drain is not None:
            await self._drain
        self.process = None
