"""Driving the web chat (/chat, Converse.js) in Chromium with Playwright, for the web chat and
invitation tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from appliance.web import webchat
from tests.web.console_helpers import CHROMIUM, CHROMIUM_ARGS, SHOTS

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1200, "height": 900}
UI_TIMEOUT = 60_000  # ms: Converse's first start (IndexedDB, disco, rooms) on a loaded 2-core machine (load 17 seen)

def _missing() -> str:
    if not CHROMIUM.exists():
        return "needs /usr/bin/chromium (apt-get install chromium)"
    if webchat.version() is None:
        return "the web chat is not built: run `make webchat` (npm)"
    return ""


needs_webchat = pytest.mark.skipif(bool(_missing()), reason=_missing() or "-")


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A headless Chromium (Playwright) that accepts the test server's self-signed certificate."""
    playwright_api = pytest.importorskip("playwright.async_api", reason="needs `pip install playwright`")
    SHOTS.mkdir(exist_ok=True)
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(browser: Any, viewport: dict[str, int]) -> Any:
    context = await browser.new_context(ignore_https_errors=True, viewport=viewport)
    context.set_default_timeout(UI_TIMEOUT)
    return await context.new_page()


async def log_in(page: Any, chat_url: str, jid: str, password: str) -> None:
    """Open the web chat and log in with Converse's own form; returns once the contact list shows."""
    await page.goto(chat_url)
    await page.locator("#converse-login-jid").fill(jid)
    await page.locator("#converse-login-password").fill(password)
    await page.locator("#converse-login button[type=submit]").click()
    await page.locator("converse-roster").wait_for()


async def send(page: Any, text: str) -> None:
    """Type a message into the chat or room that is open and send it with Enter."""
    box = page.locator(".chat-textarea").last
    await box.fill(text)
    await box.press("Enter")


async def sees_message(page: Any, text: str) -> None:
    await page.locator(".chat-msg__text", has_text=text).first.wait_for()
