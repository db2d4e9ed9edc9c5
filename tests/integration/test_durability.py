"""Acknowledged means committed: kill -9 the real server process right after it answers, lose nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.harness import Client, free_port

ROOT = Path(__file__).parents[2]
DOMAIN = "localhost"
PASSWORD = "correct horse"
N = 50
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


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    config = tmp_path / "parlour.toml"
    config.write_text(
        '[server]\nstate_dir = "state"\n\n'
        f'[c2s]\ninterfaces = ["127.0.0.1"]\nport = {free_port()}\ndirect_tls_port = 0\n\n'
        "[limits]\nscram_iterations = 4096\nauth_failure_delay = 0\n\n"
        "[http]\nenabled = false\n\n"
        f'[hosts."{DOMAIN}"]\n'
    )
    for user in ("sender", "recipient"):
        added = parlour("user", "add", f"{user}@{DOMAIN}", "--config", str(config), stdin=PASSWORD + "\n")
        assert added.returncode == 0, added.stdout + added.stderr
    process = ServerProcess(config, tmp_path / "server.log")
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


def c2s_port(config: Path) -> int:
    for line in config.read_text().splitlines():
        if line.startswith("port = "):
            return int(line.split("=")[1])
    raise AssertionError("no c2s port in the config")


async def connect(server: ServerProcess, user: str) -> Client:
    client = Client(f"{user}@{DOMAIN}/durable", PASSWORD, server.config.parent / "state" / "certs" / "ca.pem")
    client.connect(host="127.0.0.1", port=c2s_port(server.config))
    await asyncio.wait_for(client.started.wait(), TIMEOUT)
    return client


async def test_offline_messages_survive_kill_9_after_the_answer(server: ServerProcess) -> None:
    # `parlour run` serves on uvloop where it is installed (a dependency on Linux), as this run shows.
    assert "event loop: uvloop" in server.log.read_text()
    sender = await connect(server, "sender")
    bodies = [f"message {i:02d} of {N}: durable \N{SNOWMAN}" for i in range(N)]
    for body in bodies:
        sender.send_message(mto=f"recipient@{DOMAIN}", mbody=body, mtype="chat")
    # Stanzas of one session are handled in order: the ping's answer comes after every message was
    # taken responsibility for, i.e. (acknowledged means committed) after each one is on disk.
    answer = await sender.plugin["xep_0199"].send_ping(DOMAIN, timeout=TIMEOUT)
    assert answer["type"] == "result"
    await server.kill()
    sender.abort()

    await server.start()
    recipient = await connect(server, "recipient")
    await recipient.get_roster()
    recipient.send_presence()  # initial presence: the server hands over the offline messages
    try:
        received = []
        for _ in range(N):
            message = await recipient.next_message(TIMEOUT)
            received.append(message["body"])
        assert received == bodies
        assert all(m for m in received)
        # And nothing more: a server-side ping round trip drains anything still in flight.
        await recipient.plugin["xep_0199"].send_ping(DOMAIN, timeout=TIMEOUT)
        assert recipient.messages.empty()
    finally:
        with contextlib.suppress(Exception):
            recipient.disconnect()
