"""The console's Federation page in Chromium: block a domain, a real client's message to it is refused at
once with the reason, unblock it again; the page also works in German."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.harness import Harness
from tests.web.console_helpers import configured_server, console_browser, needs_chromium, screenshot


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Harness]:
    h = await configured_server(tmp_path, federation=True)
    try:
        yield h
    finally:
        await h.close()


@needs_chromium
async def test_block_and_unblock_in_the_console(server: Harness) -> None:
    alice = await server.client(await server.user("alice"))
    base = f"http://127.0.0.1:{server.http_port}"
    async with console_browser(base) as page:
        await page.get_by_role("link", name="Federation").click()
        await page.wait_for_url("**/admin/federation")
        assert "every other XMPP server except the blocked ones" in await page.locator("#federation-state").inner_text()
        await page.get_by_label("Domain").fill("spam.example")
        await page.get_by_role("button", name="Block", exact=True).click()
        await page.wait_for_selector("text=spam.example is blocked: nothing goes to it or comes from it.")
        assert await page.locator("td.blocked-domain").all_inner_texts() == ["spam.example"]
        await screenshot(page, "console-federation")

        alice.send_message(mto="eve@spam.example", mbody="hi", mtype="chat")
        error = await alice.next_message()
        assert error["error"]["condition"] == "not-allowed"
        assert error["error"]["text"] == "spam.example is blocked on this server"

        await page.get_by_role("button", name="Unblock spam.example").click()
        await page.wait_for_selector("text=spam.example is no longer blocked.")
        assert await page.locator("td.blocked-domain").count() == 0
        await page.goto(f"{base}/admin/federation?lang=de")
        assert await page.get_by_role("heading", name="Gesperrte Domains").count() == 1
