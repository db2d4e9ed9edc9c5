"""The web chat at /chat: Converse.js served by Parlour, set up for the host, used in Chromium.

Two users log in through /chat (one on a phone-width screen), chat, join a room and share a file
through the upload service; the page itself is checked over HTTPS with a plain HTTP client.
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from appliance.services.invitations import InvitationTerms
from appliance.storage.api import RosterItem
from appliance.web import webchat
from tests.integration.harness import PASSWORD, Harness, free_port, make_config, start_harness
from tests.web.console_helpers import admin_login, http_session
from tests.web.webchat_helpers import DESKTOP, PHONE, chromium, log_in, needs_webchat, new_page, sees_message, send

LOCK = Path(__file__).parents[2] / "packaging" / "webchat" / "package-lock.json"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Harness]:
    # A fixed HTTPS port: the upload service's URLs (https://upload.localhost:PORT/...) name it.
    http = replace(make_config(tmp_path).http, tls_port=free_port())
    h = await start_harness(tmp_path, http=http)
    try:
        yield h
    finally:
        await h.close()


def chat_url(h: Harness) -> str:
    # By the domain's name, as users reach it: the upload service's URLs use that name too.
    return f"https://{h.domain}:{h.https_port}/chat"


def _insecure() -> aiohttp.TCPConnector:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return aiohttp.TCPConnector(ssl=context)


@pytest.mark.skipif(webchat.version() is None, reason="the web chat is not built: run `make webchat` (npm)")
async def test_the_page_carries_the_domain_and_the_pinned_converse(server: Harness) -> None:
    pinned = json.loads(LOCK.read_text())["packages"]["node_modules/converse.js"]["version"]
    assert webchat.version() == pinned
    async with aiohttp.ClientSession(connector=_insecure()) as s:
        page = await s.get(chat_url(server), params={"jid": "</script><script>alert(1)</script>"})
        assert page.status == 200
        text = await page.text()
        settings = json.loads(re.search(r'id="parlour-chat">(.*?)</script>', text, re.S)[1])  # type: ignore[index]
        assert settings["domain"] == server.domain
        assert settings["jid"] == "</script><script>alert(1)</script>"  # data, escaped: never markup
        assert "<script>alert(1)" not in text
        policy = page.headers["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "https://localhost:*" in policy and "conversejs.org" not in policy
        script = await s.get(f"https://{server.domain}:{server.https_port}/static/chat/converse.min.js")
        assert script.status == 200 and len(await script.read()) > 500_000
        assert script.headers["Cache-Control"] == "no-cache"


async def _contacts(h: Harness, a: str, b: str) -> None:
    """Make a and b mutual contacts (subscription both), as an accepted invitation leaves them."""
    assert h.server.stores is not None
    roster = h.server.stores.roster
    for user, contact in ((a, b), (b, a)):
        await roster.put(h.domain, user.split("@")[0], RosterItem(contact, subscription="both"))


@needs_webchat
async def test_two_users_chat_join_a_room_and_share_a_file(server: Harness, tmp_path: Path) -> None:
    alice, bob = await server.user("alice"), await server.user("bob")
    await _contacts(server, alice, bob)
    room = f"office@conference.{server.domain}"
    attachment = tmp_path / "minutes.txt"
    attachment.write_bytes(b"minutes of the meeting\n" * 20)
    async with chromium() as browser:
        alice_page, bob_page = await new_page(browser, DESKTOP), await new_page(browser, PHONE)
        await log_in(alice_page, chat_url(server), alice, PASSWORD)
        await log_in(bob_page, chat_url(server), bob, PASSWORD)
        await alice_page.locator("converse-roster .open-chat", has_text="bob").first.wait_for()

        await alice_page.goto(f"{chat_url(server)}#converse/chat?jid={bob}")
        await send(alice_page, "hello bob, from the browser")
        await bob_page.goto(f"{chat_url(server)}#converse/chat?jid={alice}")
        await sees_message(bob_page, "hello bob, from the browser")

        for page in (alice_page, bob_page):
            await page.goto(f"{chat_url(server)}#converse/room?jid={room}")
            await page.locator("converse-muc .chat-textarea").wait_for()
        await send(alice_page, "good morning, office")
        await sees_message(bob_page, "good morning, office")

        await alice_page.locator("converse-muc input.fileupload").set_input_files(str(attachment))
        link = bob_page.locator("converse-muc a[href*='/upload/']").first
        await link.wait_for()
        url = await link.get_attribute("href")
        await bob_page.screenshot(path=str(Path(__file__).parent / "screenshots" / "webchat-room-phone.png"))
    async with aiohttp.ClientSession(connector=_insecure()) as s:
        download = await s.get(url)
        assert download.status == 200 and await download.read() == attachment.read_bytes()


async def test_the_console_links_to_the_web_chat(console_server: Harness) -> None:
    async with http_session() as s:
        status, text = await admin_login(s, f"http://127.0.0.1:{console_server.http_port}")
    assert status == 200
    assert 'href="/chat"' in text


@needs_webchat
async def test_an_invitation_makes_the_account_and_the_web_chat_shows_the_inviter(server: Harness) -> None:
    alice = await server.user("alice")
    token, _record = await server.server.services.invitations.create(
        "command line", terms=InvitationTerms(contact=alice))
    landing = f"https://{server.domain}:{server.https_port}/invite/{token}"
    async with chromium() as browser:
        page = await new_page(browser, PHONE)
        await page.goto(landing)
        assert (await page.get_attribute("#open-in-app", "href")) == f"xmpp:{alice}?roster;preauth={token};ibr=y"
        await page.get_by_label("User name").fill("juliet")
        await page.get_by_label("Password", exact=True).fill(PASSWORD)
        await page.get_by_label("Password again").fill(PASSWORD)
        await page.get_by_role("button", name="Create account").click()
        await page.locator("#open-web-chat").click()
        await page.wait_for_url("**/chat?jid=juliet%40localhost")
        assert await page.locator("#converse-login-jid").input_value() == f"juliet@{server.domain}"
        await page.locator("#converse-login-password").fill(PASSWORD)
        await page.locator("#converse-login button[type=submit]").click()
        await page.locator("converse-roster .open-chat", has_text="alice").first.wait_for()
        await page.screenshot(path=str(Path(__file__).parent / "screenshots" / "webchat-invited-phone.png"))
