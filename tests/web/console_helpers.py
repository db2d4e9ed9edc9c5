"""Helpers for the setup wizard, admin console and API tests: servers configured the way setup does it."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from appliance.app import Parlour
from appliance.app.offline import offline_setup
from appliance.app.setup import SetupMode
from appliance.config.model import Config
from appliance.services.setup import SetupAnswers
from tests.integration.harness import Harness, free_port

ADMIN_PASSWORD = "admin secret 1"
ADMIN = "boss@localhost"

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).parent / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)")


def loopback_listeners() -> dict[str, dict[str, object]]:
    """Config tables for loopback-only listeners on free ports (what the tests add to setup's file)."""
    return {
        "c2s": {"interfaces": ["127.0.0.1"], "port": free_port(), "direct_tls_port": free_port()},
        "http": {"interfaces": ["127.0.0.1"], "port": free_port(), "tls_port": free_port()},
        "limits": {"auth_failure_delay": 0},
        # Calls are on by default after setup: the STUN/TURN server on loopback too, relaying on loopback.
        "turn": {"interfaces": ["127.0.0.1"], "port": free_port(), "relay_address": "127.0.0.1"},
        "modules": {"proxy65": {"port": 0, "address": "127.0.0.1"}},  # SOCKS5 proxy: any free port, not 7777
        # With federation on: the s2s listener on a free loopback port, and a resolver that answers
        # nothing at once (no DNS lookups leave the test; unknown domains bounce as not found).
        "s2s": {"interfaces": ["127.0.0.1"], "port": free_port(), "direct_tls_port": free_port(),
                "nameservers": ["127.0.0.1:9"],
                "dns_timeout": 0.2},
    }


async def configured_config(tmp_path: Path, **answers: object) -> Config:
    """Set up as `parlour setup` would (admin boss@localhost): tmp_path/parlour.toml and tmp_path/state."""
    setup = SetupAnswers(domain="localhost", admin="boss", password=ADMIN_PASSWORD, extra=loopback_listeners())
    for name, value in answers.items():
        setattr(setup, name, value)
    return await offline_setup(setup, tmp_path / "parlour.toml", tmp_path / "state")


async def configured_server(tmp_path: Path, **answers: object) -> Harness:
    """A server set up as `parlour setup` would (admin boss@localhost), started from the written file."""
    server = Parlour(await configured_config(tmp_path, **answers))
    await server.start()
    return Harness(server)


def setup_mode(tmp_path: Path) -> SetupMode:
    extra = loopback_listeners()
    port = int(extra["http"]["port"])  # type: ignore[call-overload]
    return SetupMode(config_path=tmp_path / "parlour.toml", state_dir=tmp_path / "state", port=port,
                     interfaces=("127.0.0.1",), extra=extra)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "page has no CSRF field"
    return match[1]


def http_session() -> aiohttp.ClientSession:
    """A client that keeps cookies for 127.0.0.1 and does not follow redirects by default."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def admin_login(session: aiohttp.ClientSession, base: str, jid: str = ADMIN,
                      password: str = ADMIN_PASSWORD, **headers: str) -> tuple[int, str]:
    """Log in to the console; returns the final status and page text."""
    page = await session.get(f"{base}/admin/login", headers=headers)
    csrf = csrf_of(await page.text())
    response = await session.post(f"{base}/admin/login", data={"csrf": csrf, "jid": jid, "password": password},
                                  headers=headers)
    return response.status, await response.text()


async def walk_wizard_http(session: aiohttp.ClientSession, base: str, token: str,
                           database: dict[str, str] | None = None) -> str:
    """Answer every wizard step over plain HTTP (the browser test does the same with Chromium); the
    database step keeps the built-in one unless `database` says otherwise."""
    page = await session.get(f"{base}/setup?token={token}")
    assert page.status == 200, await page.text()
    csrf = csrf_of(await page.text())
    steps = [
        ("language", {"language": "en"}),
        ("name", {"domain": "localhost", "action": "next"}),
        ("certificate", {"certificate": "local"}),
        ("admin", {"admin": "boss", "password": ADMIN_PASSWORD, "password2": ADMIN_PASSWORD}),
        ("registration", {"registration": "invite"}),
        ("features", {"group_chat": "on", "history": "on", "history_days": "30"}),
        ("database", database or {"database": "embedded"}),
    ]
    for step, data in steps:
        response = await session.post(f"{base}/setup/{step}", data={"csrf": csrf, **data})
        assert response.status == 200, (step, await response.text())
    done = await session.post(f"{base}/setup/review", data={"csrf": csrf, "action": "finish"})
    assert done.status == 200, await done.text()
    return await done.text()


@contextlib.asynccontextmanager
async def console_browser(base: str) -> AsyncIterator[Any]:
    """A Chromium page logged in to the console at `base` as the administrator (Playwright)."""
    playwright_api = pytest.importorskip("playwright.async_api", reason="needs `pip install playwright`")
    SHOTS.mkdir(exist_ok=True)
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(viewport={"width": 1100, "height": 900})).new_page()
            await page.goto(f"{base}/admin/login?lang=en")
            await page.get_by_label("Address").fill(ADMIN)
            await page.get_by_label("Password").fill(ADMIN_PASSWORD)
            await page.get_by_role("button", name="Log in").click()
            await page.wait_for_url("**/admin/")
            yield page
        finally:
            await browser.close()


async def screenshot(page: Any, name: str) -> None:
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
