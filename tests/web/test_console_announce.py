"""The console's announcement form (Online page) over HTTP: CSRF-protected, it reaches every client online
over real XMPP sessions, is audited, and a disabled account cannot log in to the console."""

from __future__ import annotations

import html

import pytest

from tests.integration.harness import Harness
from tests.web.console_helpers import ADMIN, admin_login, csrf_of, http_session


def base(h: Harness) -> str:
    return f"http://127.0.0.1:{h.http_port}"


async def test_the_console_announces_to_everyone_online(console_server: Harness,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    h, url = console_server, base(console_server)
    caplog.set_level("INFO", logger="appliance.admin")
    alice = await h.client(await h.user("alice"))
    bob = await h.client(await h.user("bob"))
    async with http_session() as s:
        assert (await admin_login(s, url))[0] == 200
        forged = await s.post(f"{url}/admin/announce", data={"announcement": "forged", "csrf": "forged"},
                              allow_redirects=False)
        assert forged.status == 403
        page = await s.get(f"{url}/admin/sessions")
        csrf = csrf_of(await page.text())
        empty = await s.post(f"{url}/admin/announce", data={"announcement": "  ", "csrf": csrf})
        assert "Write the announcement first." in await empty.text()
        sent = await s.post(f"{url}/admin/announce", data={"announcement": "Fire drill at 3 pm.", "csrf": csrf})
        assert sent.status == 200 and str(sent.url).endswith("/admin/sessions")
        assert "Announcement sent to 2 online sessions." in html.unescape(await sent.text())
    for client in (alice, bob):
        message = await client.next_message()
        assert (message["from"], message["body"]) == ("localhost", "Fire drill at 3 pm.")
        assert client.messages.empty()  # the forged and the empty one sent nothing
    assert f"admin {ADMIN}: sent an announcement to 2 sessions" in caplog.text


async def test_a_disabled_account_cannot_log_in_to_the_console(console_server: Harness) -> None:
    h, url = console_server, base(console_server)
    services = h.server.services
    assert services is not None
    await services.accounts.set_disabled("someone@localhost", ADMIN, True)
    async with http_session() as s:
        status, text = await admin_login(s, url)
        assert "/admin/logout" not in text  # still on the login page
    await services.accounts.set_disabled("someone@localhost", ADMIN, False)
    async with http_session() as s:
        status, text = await admin_login(s, url)
        assert status == 200 and "/admin/logout" in text
