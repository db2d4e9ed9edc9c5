"""A real browser library: strophe.js (from npm) in headless Chromium logs in over WebSocket and over
BOSH and exchanges messages with a slixmpp client over TCP.

Needs Debian's Chromium (`apt-get install chromium`), `pip install playwright` (never `playwright
install`: the system browser is used) and `npm ci` in tests/web/js/. Without them the tests are skipped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.integration.harness import PASSWORD, Harness

CHROMIUM = Path("/usr/bin/chromium")
STROPHE = Path(__file__).parent / "js" / "node_modules" / "strophe.js" / "dist" / "strophe.umd.min.js"

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)"),
    pytest.mark.skipif(not STROPHE.exists(), reason="needs strophe.js: run `npm ci` in tests/web/js/"),
]

PAGE = (
    "<!doctype html><html><head><title>strophe test</title><script src='/strophe.js'></script></head>"
    "<body></body></html>"
)


@pytest.fixture
async def web_page_origin() -> AsyncIterator[str]:
    """A separate loopback web server for the test page, as when a web client is hosted elsewhere
    (BOSH then needs our CORS headers; a page not loaded from the network may not reach loopback)."""

    async def page(_request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def script(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(STROPHE)

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/strophe.js", script)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()

# Runs in the page: connect, and resolve with the bound JID once the session is up.
CONNECT = """
([service, jid, password]) => new Promise((resolve, reject) => {
    const { Strophe, $pres } = globalThis;  // the UMD bundle sets these globals
    const conn = new Strophe.Connection(service);
    window.received = [];
    window.conn = conn;
    conn.connect(jid, password, (status, condition) => {
        const S = Strophe.Status;
        if (status === S.CONNECTED) {
            conn.addHandler((m) => {
                const body = m.getElementsByTagName("body")[0];
                if (body) window.received.push(Strophe.getText(body));
                return true;
            }, null, "message");
            conn.send($pres());
            resolve(conn.jid);
        } else if (status === S.AUTHFAIL || status === S.CONNFAIL || status === S.ERROR) {
            reject(new Error(`strophe status ${status} ${condition || ""}`));
        }
    });
})
"""

SEND = """
([to, text]) => {
    const { $msg } = globalThis;
    window.conn.send($msg({ to, type: "chat" }).c("body").t(text));
}
"""


@pytest.mark.parametrize("transport", ["websocket", "bosh"])
async def test_strophe_logs_in_and_chats_with_a_tcp_client(
    harness: Harness, web_page_origin: str, transport: str
) -> None:
    playwright_api = pytest.importorskip("playwright.async_api", reason="needs `pip install playwright`")
    alice = await harness.user("alice")
    bob_jid = await harness.user("bob")
    bob = await harness.client(bob_jid)
    scheme = "ws" if transport == "websocket" else "http"
    path = "/xmpp-websocket" if transport == "websocket" else "/http-bind"
    service = f"{scheme}://127.0.0.1:{harness.http_port}{path}"

    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            page = await browser.new_page()
            await page.goto(web_page_origin)
            jid = await page.evaluate(CONNECT, [service, f"{alice}/browser", PASSWORD])
            assert jid == f"{alice}/browser"

            await page.evaluate(SEND, [bob_jid, f"hello from strophe over {transport}"])
            got = await bob.next_message(timeout=10)
            assert got["body"] == f"hello from strophe over {transport}"
            assert str(got["from"]) == jid

            bob.send_message(mto=jid, mbody="hello from TCP", mtype="chat")
            await page.wait_for_function("window.received.includes('hello from TCP')", timeout=10_000)
            await page.evaluate("window.conn.disconnect()")
        finally:
            await browser.close()
