"""A Parlour server on PostgreSQL: real clients chat, an offline message waits, kill -9 loses nothing."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from tests.integration.test_durability import (
    DOMAIN,
    TIMEOUT,
    ServerProcess,
    check_kill_9_loses_nothing,
    connect,
    running_server,
)
from tests.pgserver import PostgresServer


@pytest.fixture
async def pg_server(tmp_path: Path, postgres: PostgresServer) -> AsyncIterator[tuple[ServerProcess, str]]:
    url = postgres.create_database()
    async with running_server(tmp_path, f'[storage]\nurl = "{url}"\n\n') as process:
        yield process, url


async def test_server_on_postgresql_delivers_live_and_offline_and_survives_kill_9(
    pg_server: tuple[ServerProcess, str],
) -> None:
    server, url = pg_server
    sender, recipient = await connect(server, "sender"), await connect(server, "recipient")
    try:
        await recipient.get_roster()
        recipient.send_presence()
        await sender.plugin["xep_0199"].send_ping(DOMAIN, timeout=TIMEOUT)  # recipient's presence is in
        sender.send_message(mto=f"recipient@{DOMAIN}", mbody="live over PostgreSQL", mtype="chat")
        assert (await recipient.next_message(TIMEOUT))["body"] == "live over PostgreSQL"
        recipient.disconnect()
        await recipient.disconnected
        sender.send_message(mto=f"recipient@{DOMAIN}", mbody="kept for later", mtype="chat")
        await sender.plugin["xep_0199"].send_ping(DOMAIN, timeout=TIMEOUT)
        with psycopg.connect(url) as conn:  # stored in PostgreSQL, not in a file of the state folder
            row = conn.execute("SELECT count(*) FROM offline_messages WHERE username = 'recipient'").fetchone()
            assert row == (1,)
        assert not (server.config.parent / "state" / "parlour.db").exists()
        recipient = await connect(server, "recipient")
        await recipient.get_roster()
        recipient.send_presence()
        assert (await recipient.next_message(TIMEOUT))["body"] == "kept for later"
    finally:
        for client in (sender, recipient):
            with contextlib.suppress(Exception):
                client.abort()
    await check_kill_9_loses_nothing(server)
