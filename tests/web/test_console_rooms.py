"""Chat rooms in the admin console (Chromium) and the API, with a real slixmpp occupant in the room."""

from __future__ import annotations

import aiohttp
import pytest
from slixmpp import JID

from tests.integration.harness import Harness
from tests.integration.test_muc import NS_USER, muc_client, presence_from
from tests.web.console_helpers import (
    ADMIN,
    admin_login,
    console_browser,
    csrf_of,
    http_session,
    needs_chromium,
    screenshot,
)
from tests.web.test_api import api  # noqa: F401 (fixture)

ROOM = "lounge@conference.localhost"


@pytest.fixture
def server(console_server: Harness) -> Harness:
    return console_server


def item(presence: object) -> object:
    return presence.xml.find(f"{{{NS_USER}}}x/{{{NS_USER}}}item")  # type: ignore[attr-defined]


@needs_chromium
async def test_create_join_change_owners_and_destroy_in_the_console(
    server: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="appliance.admin")
    base = f"http://127.0.0.1:{server.http_port}"
    alice = await muc_client(server, "alice")
    async with console_browser(base) as page:
        await page.get_by_role("link", name="Rooms").click()
        await page.wait_for_url("**/admin/rooms")
        await page.get_by_label("Room name").fill("lounge")
        await page.get_by_label("Title").fill("The Lounge")
        await page.get_by_role("button", name="Create room").click()
        await page.wait_for_selector(f"text=Room {ROOM} created.")

        # A client joins the room the console made and sees it as a persistent room with its title.
        await alice.plugin["xep_0045"].join_muc_wait(JID(ROOM), "Alice", timeout=10)
        info = await alice.plugin["xep_0030"].get_info(jid=ROOM)
        assert "muc_persistent" in info["disco_info"]["features"]
        assert [i[3] for i in info["disco_info"]["identities"]] == ["The Lounge"]

        await page.reload()
        row = page.locator("tr", has_text=ROOM)
        assert "persistent, public" in await row.inner_text()
        assert await row.locator("td").nth(2).inner_text() == "1"  # Alice
        await screenshot(page, "console-rooms")
        await page.goto(f"{base}/admin/rooms?lang=de")
        assert "Raum erstellen" in await page.content()
        await screenshot(page, "console-rooms-de")
        await page.goto(f"{base}/admin/rooms?lang=en")

        # New owners: Alice is told her affiliation changed.
        row = page.locator("tr", has_text=ROOM)
        await row.get_by_label(f"Owners of {ROOM}").fill(f"{ADMIN}, alice@localhost")
        await row.get_by_role("button", name="Change owners").click()
        await page.wait_for_selector(f"text=Owners of {ROOM}: {ADMIN}, alice@localhost.")
        while (changed := item(await presence_from(alice, f"{ROOM}/Alice"))).get("affiliation") != "owner":
            pass
        assert changed.get("affiliation") == "owner"  # type: ignore[attr-defined]

        # Destroy with a reason and an alternate venue: the occupant gets the destroy presence.
        row = page.locator("tr", has_text=ROOM)
        await row.get_by_placeholder("Reason (optional)").fill("moving house")
        await row.get_by_placeholder("Alternate room (optional)").fill("hall@conference.localhost")
        await row.get_by_role("button", name=f"Destroy {ROOM}").click()
        assert f"Destroy the room {ROOM}?" in await page.locator("#confirm-question").inner_text()
        await page.get_by_role("button", name="Yes, do it").click()  # destroying asks first
        await page.wait_for_selector(f"text=Room {ROOM} destroyed.")
        gone = await presence_from(alice, f"{ROOM}/Alice", ptype="unavailable")
        destroy = gone.xml.find(f"{{{NS_USER}}}x/{{{NS_USER}}}destroy")
        assert destroy.get("jid") == "hall@conference.localhost"
        assert destroy.findtext(f"{{{NS_USER}}}reason") == "moving house"
        assert "No rooms yet." in await page.content()
    assert f"admin {ADMIN}: created room {ROOM} (owners {ADMIN})" in caplog.text
    assert f"admin {ADMIN}: set the owners of room {ROOM} to {ADMIN}, alice@localhost" in caplog.text
    assert f"admin {ADMIN}: destroyed room {ROOM} (reason 'moving house', alternate venue hall@" in caplog.text


async def test_room_forms_need_the_csrf_token_and_explain_mistakes(server: Harness) -> None:
    base = f"http://127.0.0.1:{server.http_port}"
    async with http_session() as s:
        await admin_login(s, base)
        r = await s.post(f"{base}/admin/rooms/create", data={"name": "sneaky", "owners": ADMIN},
                         allow_redirects=False)
        assert r.status == 403 and "CSRF" in await r.text()
        csrf = csrf_of(await (await s.get(f"{base}/admin/rooms")).text())
        for data, error in (
            ({"name": "x", "service": "conference.elsewhere.org", "owners": ADMIN},
             "conference.elsewhere.org is not a chat service of this server."),
            ({"name": "x", "service": "conference.localhost", "owners": ""}, "A room needs at least one owner."),
            ({"name": "x", "service": "conference.localhost", "owners": "not an address@"},
             "is not an account address"),
        ):
            r = await s.post(f"{base}/admin/rooms/create", data={"csrf": csrf, **data})
            assert error in await r.text()
        r = await s.post(f"{base}/admin/rooms/destroy", data={"csrf": csrf, "room": "nowhere@conference.localhost",
                                                              "confirmed": "yes"})
        assert "There is no room nowhere@conference.localhost." in await r.text()
        r = await s.get(f"{base}/admin/rooms", headers={"Accept-Language": "fr"})
        assert "Créer un salon" in await r.text()


async def test_rooms_api(api: tuple[aiohttp.ClientSession, str], server: Harness) -> None:  # noqa: F811
    s, url = api
    r = await s.post(f"{url}/rooms", json={"jid": "team@conference.localhost", "owners": [ADMIN],
                                            "title": "Team", "public": False})
    assert r.status == 201 and (await r.json())["jid"] == "team@conference.localhost"
    r = await s.post(f"{url}/rooms", json={"jid": "team@conference.localhost"})
    assert r.status == 400 and "already exists" in (await r.json())["error"]
    rooms = (await (await s.get(f"{url}/rooms")).json())["rooms"]
    assert rooms == [{"jid": "team@conference.localhost", "name": "Team", "persistent": True, "public": False,
                      "members_only": False, "occupants": 0, "owners": [ADMIN]}]
    r = await s.put(f"{url}/rooms/team@conference.localhost/owners", json={"owners": ["carol@localhost"]})
    assert r.status == 200 and (await r.json())["owners"] == ["carol@localhost"]
    r = await s.put(f"{url}/rooms/team@conference.localhost/owners", json={"owners": []})
    assert r.status == 400 and "at least one owner" in (await r.json())["error"]
    assert (await (await s.get(f"{url}/rooms")).json())["rooms"][0]["owners"] == ["carol@localhost"]
    r = await s.delete(f"{url}/rooms/team@conference.localhost?reason=done&alternate=hall@conference.localhost")
    assert r.status == 200 and (await r.json())["destroyed"] == "team@conference.localhost"
    r = await s.delete(f"{url}/rooms/team@conference.localhost")
    assert r.status == 404 and "There is no room" in (await r.json())["error"]
    assert (await (await s.get(f"{url}/rooms")).json())["rooms"] == []
    assert await server.server.stores.muc.rooms("conference.localhost") == []  # type: ignore[union-attr]
