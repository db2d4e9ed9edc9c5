"""Federation over the JSON API: read the settings, block and unblock a domain (applied at once)."""

from __future__ import annotations

import aiohttp
import pytest

from tests.integration.harness import Harness
from tests.web.test_api import api  # noqa: F401 (fixture)


@pytest.fixture
def server(console_server: Harness) -> Harness:
    return console_server


async def test_block_and_unblock_through_the_api(
    server: Harness, api: tuple[aiohttp.ClientSession, str]  # noqa: F811
) -> None:
    session, url = api
    shown = await (await session.get(f"{url}/federation")).json()
    assert shown == {"enabled": False, "mode": "blocklist", "blocked_domains": [], "allowed_domains": [],
                     "silent_drop": False}
    made = await session.post(f"{url}/federation/blocked", json={"domain": "Spam.Example"})
    assert made.status == 201 and await made.json() == {"blocked": "spam.example"}
    assert server.server.core is not None
    assert server.server.core.config.federation.blocked_domains == ("spam.example",)
    again = await session.post(f"{url}/federation/blocked", json={"domain": "spam.example"})
    assert again.status == 400 and "blocked already" in (await again.json())["error"]
    bad = await session.post(f"{url}/federation/blocked", json={"domain": "not a domain"})
    assert bad.status == 400
    gone = await session.delete(f"{url}/federation/blocked/spam.example")
    assert await gone.json() == {"unblocked": "spam.example"}
    assert server.server.core.config.federation.blocked_domains == ()
