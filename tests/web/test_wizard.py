"""Chromium (Playwright) walks the setup wizard from an empty state to a working server, then uses the
admin console; afterwards a slixmpp client over TCP and strophe.js in the browser chat.

Screenshots of every wizard step and console page go to tests/web/screenshots/ (git-ignored).
Needs Debian's Chromium and `pip install playwright` (never `playwright install`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.integration.harness import PASSWORD, Harness
from tests.web.console_helpers import ADMIN, ADMIN_PASSWORD, CHROMIUM, CHROMIUM_ARGS, SHOTS, setup_mode
from tests.web.test_browser import CONNECT, SEND, STROPHE, web_page_origin  # noqa: F401 (fixture)

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)"),
    pytest.mark.skipif(not STROPHE.exists(), reason="needs strophe.js: run `npm ci` in tests/web/js/"),
]


async def test_wizard_to_working_server_console_and_chat(tmp_path: Path, web_page_origin: str) -> None:  # noqa: F811
    playwright_api = pytest.importorskip("playwright.async_api", reason="needs `pip install playwright`")
    SHOTS.mkdir(exist_ok=True)
    mode = setup_mode(tmp_path)
    mode.extra["http"].update(consider_websocket_secure=True, consider_bosh_secure=True)
    urls = await mode.start()
    assert urls == [f"http://127.0.0.1:{mode.port}/setup?token={mode.token.value}"]
    base = f"http://127.0.0.1:{mode.port}"
    try:
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                # The console moves to HTTPS with the local CA's certificate, which this browser does not trust.
                context = await browser.new_context(viewport={"width": 420, "height": 900}, ignore_https_errors=True)
                page = await context.new_page()

                async def shot(name: str) -> None:
                    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

                async def next_step(expected: str) -> None:
                    await page.get_by_role("button", name="Continue").click()
                    await page.wait_for_url(f"**/setup/{expected}*")

                await page.goto(base + "/setup")  # without the token: refused, and says why
                assert "one-time token" in await page.content()
                await page.goto(urls[0])
                await page.wait_for_url("**/setup/language")
                await shot("wizard-1-language")
                await page.get_by_label("English").check()
                await next_step("name")
                await page.get_by_label("Server name").fill("localhost")
                await page.wait_for_selector("#name-check .verdict")  # the live check
                await shot("wizard-2-name")
                await next_step("certificate")
                await page.get_by_label("Local certificate").check()
                await shot("wizard-3-certificate")
                await next_step("admin")
                await page.get_by_label("User name").fill("boss")
                await page.get_by_label("Password", exact=True).fill(ADMIN_PASSWORD)
                await page.get_by_label("Password again").fill(ADMIN_PASSWORD)
                await shot("wizard-4-admin")
                await next_step("registration")
                await page.get_by_label("By invitation").check()
                await shot("wizard-5-registration")
                await next_step("directory")  # optional, left off here (tests/web/test_wizard_directory.py)
                await next_step("features")
                await shot("wizard-6-features")
                await next_step("database")
                assert await page.get_by_label("Built in (recommended)").is_checked()
                await shot("wizard-7-database")
                await next_step("review")
                assert "boss@localhost" in await page.content()
                await shot("wizard-8-review")
                await page.get_by_role("button", name="Finish setup").click()
                await page.wait_for_selector("text=Your server is ready")
                assert await page.locator(".qr svg").count() == 1
                assert await page.locator("a[href='xmpp:boss@localhost']").count() == 1
                await shot("wizard-9-done")
                await asyncio.wait_for(mode.switched.wait(), 20)
                assert mode.server is not None and (tmp_path / "parlour.toml").exists()

                # The console, same address over HTTPS, now served by the full server.
                base = f"https://127.0.0.1:{mode.server.ports['https']}"
                await page.get_by_role("link", name="Open the admin console").click()
                await page.wait_for_url(f"{base}/admin/login*")
                await shot("console-login")
                await page.get_by_label("Address").fill(ADMIN)
                await page.get_by_label("Password").fill(ADMIN_PASSWORD)
                await page.get_by_role("button", name="Log in").click()
                await page.wait_for_url("**/admin/")
                await shot("console-dashboard")
                await page.goto(base + "/admin/users")
                await page.locator("#new-jid").fill("alice@localhost")
                await page.locator("#new-pw").fill(PASSWORD)
                await page.get_by_role("button", name="Create account").click()
                await page.wait_for_selector("text=Account alice@localhost created.")
                await shot("console-users")
                await page.goto(base + "/admin/invitations")
                await page.get_by_role("button", name="Create an invitation link").click()
                link = await page.locator("#new-link").input_value()
                assert "/invite/" in link
                await shot("console-invitations")
                for name in ("sessions", "settings", "logs", "tokens"):
                    await page.goto(f"{base}/admin/{name}")
                    await shot(f"console-{name}")
                for name in ("", "users", "settings"):
                    await page.goto(f"{base}/admin/{name}?lang=de")
                    await shot(f"console-{name or 'dashboard'}-de")
                assert "Benutzer" in await page.content()
                await page.goto(link)
                await shot("invite-signup")

                # Chat: slixmpp over TCP and strophe.js over WebSocket in this browser.
                h = Harness(mode.server)
                bob_jid = await h.user("bob")
                bob = await h.client(bob_jid)
                chat = await browser.new_page()
                await chat.goto(web_page_origin)
                service = f"ws://127.0.0.1:{h.http_port}/xmpp-websocket"
                jid = await chat.evaluate(CONNECT, [service, "alice@localhost/browser", PASSWORD])
                assert jid == "alice@localhost/browser"
                await chat.evaluate(SEND, [bob_jid, "hello from the wizard's server"])
                got = await bob.next_message(timeout=10)
                assert got["body"] == "hello from the wizard's server"
                bob.send_message(mto=jid, mbody="hello back over TCP", mtype="chat")
                await chat.wait_for_function("window.received.includes('hello back over TCP')", timeout=10_000)
                await chat.evaluate("window.conn.disconnect()")
                for client in h.clients:
                    client.disconnect()
            finally:
                await browser.close()
    finally:
        await mode.stop()
