"""The console's dashboard graphs, its Online page's client column and failed logins in the log, in Chromium:
real clients log in (one over SASL2 naming its software, one announcing caps), one login fails, messages
flow; the graphs, the session list and the log page show it. Screenshots land in tests/web/screenshots."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

from appliance.xmpp.jid import JID
from appliance.xmpp.ns import NS_SASL
from tests.integration.harness import Harness
from tests.integration.test_sasl2 import BIND_WITH_SM, scram_login, tls_features
from tests.web.console_helpers import configured_server, console_browser, needs_chromium, screenshot

CAPS = ("<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://gajim.org' "
        "ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>")


async def failed_login(h: Harness, user: str) -> None:
    """One SASL PLAIN attempt with a wrong password over TLS."""
    raw, _ = await tls_features(h)
    credentials = base64.b64encode(f"\0{user}\0not the password".encode()).decode()
    await raw.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{credentials}</auth>")
    answer = await raw.element()
    assert answer.tag == f"{{{NS_SASL}}}failure"
    await raw.close()


async def bar_values(page: object, chart: str) -> list[int]:
    values = await page.locator(f"#{chart} rect").evaluate_all("bars => bars.map(b => b.dataset.value)")  # type: ignore[attr-defined]
    return [int(v) for v in values]


@needs_chromium
async def test_dashboard_graphs_clients_and_failed_logins(tmp_path: Path) -> None:
    h = await configured_server(tmp_path)
    try:
        alice = await h.user("alice")
        raw, _ = await scram_login(h, "agent-1", BIND_WITH_SM)  # SASL2: "Parlour tests" on "CI"
        bob = await h.client(await h.user("bob"))
        bob.send_raw(CAPS)
        for n in range(3):
            bob.send_message(mto=alice, mbody=f"hello {n}", mtype="chat")
        await failed_login(h, "mallory")
        await asyncio.sleep(0.3)
        assert h.server.services is not None
        h.server.services.activity.sample()  # what the minute timer does

        base = f"http://127.0.0.1:{h.http_port}"
        async with console_browser(base) as page:
            await page.goto(f"{base}/admin/?range=day#activity")
            assert len(await bar_values(page, "chart-logins")) == 24
            assert (await bar_values(page, "chart-logins"))[-1] >= 2  # alice and bob (the console is not XMPP)
            assert (await bar_values(page, "chart-failed"))[-1] == 1
            assert (await bar_values(page, "chart-messages"))[-1] == 3
            assert (await bar_values(page, "chart-sessions"))[-1] == 2
            await screenshot(page, "console-dashboard")
            await page.get_by_role("link", name="Last week").click()
            await page.wait_for_url("**range=week**")
            assert len(await bar_values(page, "chart-messages")) == 7
            assert (await bar_values(page, "chart-messages"))[-1] == 3
            await screenshot(page, "console-dashboard-week")

            await page.goto(f"{base}/admin/sessions")
            rows = await page.locator("tbody tr").all_inner_texts()
            assert any("alice@localhost" in r and "Parlour tests on CI" in r for r in rows), rows
            assert any("bob@localhost" in r and "Gajim" in r for r in rows), rows
            await screenshot(page, "console-online")

            metrics = await page.request.get(f"{base}/metrics")
            text = await metrics.text()
            assert "parlour_auth_failures_total 1" in text and "parlour_logins_total 2" in text, text

            await page.goto(f"{base}/admin/logs?q=failed+login")
            assert "failed login for mallory@localhost from 127.0.0.1" in await page.locator("main").inner_text()
        await raw.close()
    finally:
        await h.close()


@needs_chromium
async def test_deleting_an_account_asks_first_and_cancel_keeps_it(tmp_path: Path) -> None:
    h = await configured_server(tmp_path)
    try:
        carol = await h.user("carol")
        base = f"http://127.0.0.1:{h.http_port}"
        async with console_browser(base) as page:
            await page.goto(f"{base}/admin/users")
            await page.get_by_role("button", name=f"Delete {carol}").click()
            question = await page.locator("#confirm-question").inner_text()
            assert f"Delete the account {carol}" in question and "cannot be undone" in question
            await screenshot(page, "console-confirm-delete")
            await page.get_by_role("link", name="Cancel").click()
            await page.wait_for_url("**/admin/users")
            assert h.server.accounts is not None
            assert await h.server.accounts.exists(JID.parse(carol))  # nothing happened without a yes
            await page.get_by_role("button", name=f"Delete {carol}").click()
            await page.get_by_role("button", name="Yes, do it").click()
            await page.wait_for_url("**/admin/users")
            assert not await h.server.accounts.exists(JID.parse(carol))
    finally:
        await h.close()
