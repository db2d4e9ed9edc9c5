"""Logging in over real sockets: STARTTLS + SCRAM with slixmpp, bind, wrong passwords."""

from __future__ import annotations

import asyncio

from tests.integration.harness import Client, Harness


async def test_login_starttls_scram_and_bind(harness: Harness) -> None:
    jid = await harness.user("alice")
    client = await harness.client(jid, resource="laptop")
    assert str(client.boundjid) == f"{jid}/laptop"
    assert client.is_connected()


async def test_wrong_password_is_refused(harness: Harness) -> None:
    jid = await harness.user("bob")
    client = Client(f"{jid}/x", "wrong password", harness.ca_file)
    harness.clients.append(client)
    client.connect(host="127.0.0.1", port=harness.port)
    await asyncio.wait_for(client.auth_failed.wait(), 15)
    assert not client.started.is_set()
