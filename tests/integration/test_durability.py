"""Acknowledged means committed: kill -9 the real server process right after it answers, lose nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.harness import Client, free_port
from tests.integration.process import TIMEOUT, ServerProcess, parlour

DOMAIN = "localhost"
PASSWORD = "correct horse"
N = 50


@contextlib.asynccontextmanager
async def running_server(tmp_path: Path, extra_config: str = "") -> AsyncIterator[ServerProcess]:
    """A server with the accounts sender and recipient (added by `parlour user add`), stopped on exit;
    `extra_config` is TOML added before the host table (a [storage] section, say)."""
    config = tmp_path / "parlour.toml"
    config.write_text(
        '[server]\nstate_dir = "state"\n\n'
        f'[c2s]\ninterfaces = ["127.0.0.1"]\nport = {free_port()}\ndirect_tls_port = 0\n\n'
        "[limits]\nscram_iterations = 4096\nauth_failure_delay = 0\n\n"
        "[http]\nenabled = false\n\n"
        f'{extra_config}[hosts."{DOMAIN}"]\n'
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


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    async with running_server(tmp_path) as process:
        yield process


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
    await check_kill_9_loses_nothing(server)


async def check_kill_9_loses_nothing(server: ServerProcess) -> None:
    """N offline messages to recipient, a ping, kill -9, restart: recipient gets all N in order."""
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
