"""Invitation links redeemed over real HTTP: one link, one account, however the requests race."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from appliance.xmpp.jid import JID
from tests.integration.harness import PASSWORD, Harness
from tests.web.console_helpers import ADMIN

RACERS = 20


@pytest.fixture
def server(console_server: Harness) -> Harness:
    return console_server


async def _link(h: Harness) -> str:
    secret, _record = await h.server.services.invitations.create(ADMIN)
    return f"http://127.0.0.1:{h.http_port}/invite/{secret}"


async def _redeem(session: aiohttp.ClientSession, link: str, username: str) -> int:
    r = await session.post(link, data={"username": username, "password": PASSWORD, "password2": PASSWORD})
    await r.read()
    return r.status


async def test_concurrent_redemptions_of_one_link_create_one_account(server: Harness) -> None:
    link = await _link(server)
    names = [f"racer{i}" for i in range(RACERS)]
    async with aiohttp.ClientSession() as s:
        statuses = await asyncio.gather(*(_redeem(s, link, name) for name in names))
    assert statuses.count(200) == 1, statuses
    accounts = server.server.accounts
    assert accounts is not None
    created = [name for name in names if await accounts.exists(JID.parse(f"{name}@localhost"))]
    assert len(created) == 1, created
    (record,) = server.server.services.invitations.list()
    assert record.used_by == f"{created[0]}@localhost"


async def test_a_failed_redemption_gives_the_link_back(server: Harness) -> None:
    link = await _link(server)
    async with aiohttp.ClientSession() as s:
        assert await _redeem(s, link, "boss") == 400  # the name is taken: no account, link still open
        assert (await s.get(link)).status == 200
        assert await _redeem(s, link, "newcomer") == 200
        assert (await s.get(link)).status == 404
