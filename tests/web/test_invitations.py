"""Invitation links redeemed over real HTTP: one link, one account, however the requests race."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path

import aiohttp
import pytest

from appliance.services.invitations import InvitationTerms
from appliance.xmpp.jid import JID
from tests.integration.harness import PASSWORD, Harness, start_harness
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
    (record,) = await server.server.services.invitations.list()
    assert record.used_by == (f"{created[0]}@localhost",) and record.uses == 1


async def test_a_failed_redemption_gives_the_link_back(server: Harness) -> None:
    link = await _link(server)
    async with aiohttp.ClientSession() as s:
        assert await _redeem(s, link, "boss") == 400  # the name is taken: no account, link still open
        assert (await s.get(link)).status == 200
        assert await _redeem(s, link, "newcomer") == 200
        assert (await s.get(link)).status == 404


ANDROID = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36"


async def test_the_landing_page_offers_the_apps_the_qr_code_and_the_web_chat(server: Harness) -> None:
    invitations = server.server.services.invitations
    token, _record = await invitations.create(ADMIN, terms=InvitationTerms(contact=ADMIN))
    async with aiohttp.ClientSession() as s:
        page = await s.get(f"http://127.0.0.1:{server.http_port}/invite/{token}", headers={"User-Agent": ANDROID})
        html = await page.text()
    assert page.status == 200
    assert f'href="xmpp:{ADMIN}?roster;preauth={token};ibr=y"' in html  # the deep link (XEP-0401 §5.1)
    assert "<svg" in html and "Scan to open this invitation on your phone" in html
    for app in ("Conversations", "Monal", "Gajim", "Dino", "Siskin IM"):
        assert f">{app}</a>" in html, app
    apps = html.index('class="apps"')
    assert html.index("platform-android yours", apps) < html.index("platform-ios", apps)  # this phone's first
    assert "Use the web chat instead" in html and 'name="password2"' in html
    assert 'href="/chat" class="web-chat"' in html  # for someone who has an account already
    assert f"{ADMIN} invites you to chat" in html


async def test_a_reserved_name_is_kept_for_its_invitee(server: Harness) -> None:
    invitations = server.server.services.invitations
    token, record = await invitations.create(ADMIN, terms=InvitationTerms(username="carol"))
    assert invitations.uri(record, token) == f"xmpp:carol@localhost?register;preauth={token}"
    other, _record = await invitations.create(ADMIN)
    async with aiohttp.ClientSession() as s:
        assert await _redeem(s, f"http://127.0.0.1:{server.http_port}/invite/{other}", "carol") == 400
        assert await _redeem(s, f"http://127.0.0.1:{server.http_port}/invite/{token}", "carol") == 200
    accounts = server.server.accounts
    assert accounts is not None and await accounts.exists(JID.parse("carol@localhost"))


async def test_links_made_before_the_upgrade_keep_working(tmp_path: Path) -> None:
    """Invitations used to live in web-tokens.json; at start they move into the database."""
    now = time.time()
    legacy = {"id": "0ld1", "digest": hashlib.sha256(b"legacy-token").hexdigest(), "host": "localhost",
              "creator": ADMIN, "created": now, "expires": now + 3600, "used_by": ""}
    (tmp_path / "web-tokens.json").write_text(json.dumps({"invitations": [legacy], "api_tokens": []}))
    h = await start_harness(tmp_path)
    try:
        async with aiohttp.ClientSession() as s:
            assert await _redeem(s, f"http://127.0.0.1:{h.http_port}/invite/legacy-token", "oldtimer") == 200
        (record,) = await h.server.services.invitations.list()
        assert record.id == "0ld1" and record.used_by == ("oldtimer@localhost",)
        assert "0ld1" not in (tmp_path / "web-tokens.json").read_text()
    finally:
        await h.close()
