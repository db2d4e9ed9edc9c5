"""The JSON API under /api/v1 with a bearer token made by an administrator, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from appliance.modules.register import RegisterOptions
from appliance.xmpp.jid import JID
from tests.integration.harness import PASSWORD, Harness
from tests.web.conftest import trust
from tests.web.console_helpers import ADMIN, admin_login, csrf_of, http_session


@pytest.fixture
def server(console_server: Harness) -> Harness:
    return console_server


@pytest.fixture
async def api(server: Harness) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    """A client with a token made on the console's API tokens page."""
    url = f"http://127.0.0.1:{server.http_port}"
    async with http_session() as console:
        await admin_login(console, url)
        page = await console.get(f"{url}/admin/tokens")
        made = await console.post(f"{url}/admin/tokens", data={"csrf": csrf_of(await page.text()), "label": "ci"})
        text = await made.text()
    token = text.split('id="new-token"')[0].rsplit('value="', 1)[1].split('"')[0]
    assert token.startswith("plr_")
    stored = (server.server.config.server.state_dir / "web-tokens.json").read_text()
    assert token not in stored  # only its hash is kept
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        yield session, f"{url}/api/v1"


async def test_status(api: tuple[aiohttp.ClientSession, str]) -> None:
    s, url = api
    r = await s.get(f"{url}/status")
    body = await r.json()
    assert r.status == 200
    assert body["hosts"] == ["localhost"] and body["accounts"] == 1
    assert body["certificates"] and body["certificates"][0]["not_after"]


async def test_accounts_from_creation_to_deletion(api: tuple[aiohttp.ClientSession, str], server: Harness) -> None:
    s, url = api
    r = await s.post(f"{url}/users", json={"jid": "dave@localhost", "password": PASSWORD})
    assert r.status == 201 and (await r.json())["jid"] == "dave@localhost"
    r = await s.post(f"{url}/users", json={"jid": "dave@localhost", "password": PASSWORD})
    assert r.status == 400 and "already exists" in (await r.json())["error"]
    r = await s.post(f"{url}/users", json={"jid": "erin@localhost", "password": "short"})
    assert r.status == 400
    r = await s.post(f"{url}/users", data=b"not json")
    assert r.status == 400
    assert (await (await s.get(f"{url}/users?q=da")).json())["users"] == ["dave@localhost"]

    dave = await server.client("dave@localhost")
    sessions = (await (await s.get(f"{url}/sessions")).json())["sessions"]
    assert [x["jid"] for x in sessions] == ["dave@localhost/test"]
    r = await s.post(f"{url}/users/dave@localhost/disconnect")
    assert (await r.json())["disconnected"] == 1
    await dave.disconnected  # the server closed the stream

    r = await s.put(f"{url}/users/dave@localhost/password", json={"password": "a new password"})
    assert r.status == 200
    accounts = server.server.accounts
    assert accounts is not None
    assert await accounts.verify_plain(JID.parse("dave@localhost"), "a new password")
    r = await s.delete(f"{url}/users/dave@localhost")
    assert r.status == 200 and not await accounts.exists(JID.parse("dave@localhost"))
    r = await s.delete(f"{url}/users/dave@localhost")
    assert r.status == 404


async def test_invitation_link_opens_a_signup_page_once(api: tuple[aiohttp.ClientSession, str],
                                                         server: Harness) -> None:
    s, url = api
    r = await s.post(f"{url}/invitations")
    invitation = await r.json()
    assert r.status == 201 and invitation["valid"]
    assert invitation["url"].startswith(f"https://localhost:{server.https_port}/invite/")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust(server))) as browser:
        page = await browser.get(invitation["url"])
        assert page.status == 200 and "Create your account" in await page.text()
        r = await browser.post(invitation["url"], data={"username": "frank", "password": PASSWORD,
                                                        "password2": PASSWORD})
        assert r.status == 200 and "frank@localhost" in await r.text()
        again = await browser.get(invitation["url"])
        assert again.status == 404
    frank = await server.client("frank@localhost")
    assert frank.started.is_set()
    listed = (await (await s.get(f"{url}/invitations")).json())["invitations"]
    assert listed[0]["used_by"] == "frank@localhost" and not listed[0]["valid"]
    r = await s.delete(f"{url}/invitations/{invitation['id']}")
    assert r.status == 200


async def test_settings_are_validated_written_and_applied(api: tuple[aiohttp.ClientSession, str],
                                                         server: Harness) -> None:
    s, url = api
    settings = (await (await s.get(f"{url}/settings")).json())["settings"]
    assert settings["modules.register.policy"] == '"closed"'
    r = await s.patch(f"{url}/settings", json={"modules.register.policy": "sometimes"})
    assert r.status == 400 and "expected one of" in (await r.json())["error"]
    r = await s.patch(f"{url}/settings", json={"modules.register.policy": "open", "c2s.require_encryption": False})
    body = await r.json()
    assert r.status == 200 and body["restart_required"] == ["c2s"]
    assert server.server.config.hosts[0].modules.of(RegisterOptions).policy == "open"  # live, without a restart
    text = (server.server.config.source or Path()).read_text()
    assert 'policy = "open"' in text and "# Parlour configuration, written by setup" in text
    r = await s.patch(f"{url}/settings", json={"tls.certificate": "/etc/x.pem"})
    assert r.status == 400


async def test_logs_show_administrative_actions(api: tuple[aiohttp.ClientSession, str]) -> None:
    s, url = api
    await s.post(f"{url}/users", json={"jid": "gina@localhost", "password": PASSWORD})
    lines = (await (await s.get(f"{url}/logs?q=gina")).json())["lines"]
    assert any(f"admin {ADMIN}: created account gina@localhost" in line["message"] for line in lines)
