"""Administrator rights are granted by name (server.admins): they must not pass to a new account that
takes a deleted administrator's name — over the console, in-band registration and invitation links."""

from __future__ import annotations

import aiohttp
import pytest

from appliance.xmpp.jid import JID
from tests.integration.harness import PASSWORD, Harness
from tests.integration.test_register import RawStream, condition
from tests.web.console_helpers import ADMIN, admin_login, csrf_of, http_session

DEPUTY = "deputy@localhost"


@pytest.fixture
async def server(console_server: Harness) -> Harness:
    """boss and deputy are administrators; registration is open to anyone."""
    admin = console_server.server.services
    await admin.settings.apply(ADMIN, {"server.admins": [ADMIN, DEPUTY], "modules.register.policy": "open"})
    await admin.accounts.create(ADMIN, DEPUTY, PASSWORD)
    return console_server


def base(h: Harness) -> str:
    return f"http://127.0.0.1:{h.http_port}"


async def test_a_new_account_under_a_deleted_administrators_name_is_no_administrator(server: Harness) -> None:
    url = base(server)
    async with http_session() as deputy:
        assert (await admin_login(deputy, url, DEPUTY, PASSWORD))[0] == 200
    async with http_session() as boss:
        await admin_login(boss, url)
        page = await boss.get(f"{url}/admin/users")
        r = await boss.post(f"{url}/admin/users/delete", data={"jid": DEPUTY, "csrf": csrf_of(await page.text()),
                                                                "confirmed": "yes"})
        assert r.status == 200 and "deleted" in await r.text()
    assert server.server.config.server.admins == (ADMIN,)
    assert DEPUTY not in (server.server.config.source or "").read_text()  # type: ignore[union-attr]
    await server.server.services.accounts.create(ADMIN, DEPUTY, PASSWORD)  # someone else, same name
    async with http_session() as newcomer:
        status, text = await admin_login(newcomer, url, DEPUTY, PASSWORD)
        assert status == 403 and "is not an administrator" in text


async def test_names_in_server_admins_cannot_be_signed_up_for(server: Harness) -> None:
    """Deleted outside the console (XEP-0077 cancel, the CLI), the name stays listed: it is reserved."""
    accounts = server.server.accounts
    assert accounts is not None
    await accounts.delete(JID.parse(DEPUTY))
    stream = RawStream(server)
    await stream.open()
    try:
        assert condition(await stream.register("deputy", PASSWORD)) == "conflict"
        assert b'type="result"' in await stream.register("someone", PASSWORD)  # registration itself is open
    finally:
        stream.close()
    secret, _record = await server.server.services.invitations.create(ADMIN)
    async with aiohttp.ClientSession() as s:
        r = await s.post(f"{base(server)}/invite/{secret}",
                         data={"username": "deputy", "password": PASSWORD, "password2": PASSWORD})
        assert r.status == 400 and "is taken" in await r.text()
    assert not await accounts.exists(JID.parse(DEPUTY))
