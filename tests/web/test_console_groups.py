"""Shared groups in the admin console (Chromium) and the API, with real slixmpp members who get the pushes."""

from __future__ import annotations

import aiohttp
import pytest

from tests.integration.harness import Harness
from tests.integration.test_shared_roster import available_from, next_push, pushing_client
from tests.web.console_helpers import ADMIN, admin_login, console_browser, csrf_of, http_session, needs_chromium
from tests.web.console_helpers import screenshot as take_screenshot
from tests.web.test_api import api  # noqa: F401 (fixture)


@pytest.fixture
def server(console_server: Harness) -> Harness:
    return console_server


@needs_chromium
async def test_create_add_remove_rename_and_delete_in_the_console(
    server: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="appliance.admin")
    base = f"http://127.0.0.1:{server.http_port}"
    alice, bob = await server.user("alice"), await server.user("bob")
    await server.user("carol")
    a = await pushing_client(server, alice)
    b = await pushing_client(server, bob)
    async with console_browser(base) as page:
        await page.get_by_role("link", name="Shared groups").click()
        await page.wait_for_url("**/admin/groups")
        await page.get_by_label("Group name").fill("Sales")
        await page.get_by_label("Members").fill("alice, bob@localhost")
        await page.get_by_role("button", name="Create group").click()
        await page.wait_for_selector("text=Group Sales created.")
        assert await next_push(a) == (bob, "both", ["Sales"])  # the online members are told at once
        assert await next_push(b) == (alice, "both", ["Sales"])
        await available_from(a, bob)

        row = page.locator("tr.group-row", has_text="Sales")
        await row.get_by_label("Add members to Sales").fill("carol")
        await row.get_by_role("button", name="Add", exact=True).click()
        await page.wait_for_selector("text=Added to Sales: carol.")
        assert await next_push(a) == ("carol@localhost", "both", ["Sales"])
        await take_screenshot(page, "console-groups")

        row = page.locator("tr.group-row", has_text="Sales")
        await row.get_by_role("button", name="Remove bob@localhost from Sales").click()
        await page.wait_for_selector("text=Removed bob@localhost from Sales.")
        assert await next_push(a) == (bob, "remove", [])

        row = page.locator("tr.group-row", has_text="Sales")
        await row.get_by_label("New name of Sales").fill("Sales team")
        await row.get_by_role("button", name="Rename").click()
        await page.wait_for_selector("text=Group renamed to Sales team.")
        assert await next_push(a) == ("carol@localhost", "both", ["Sales team"])

        await page.locator("tr.group-row", has_text="Sales team").get_by_role(
            "button", name="Delete Sales team").click()
        assert "Delete the group Sales team?" in await page.locator("#confirm-question").inner_text()
        await page.get_by_role("button", name="Yes, do it").click()  # deleting asks first
        await page.wait_for_selector("text=Group Sales team deleted.")
        assert await next_push(a) == ("carol@localhost", "remove", [])
        assert "No shared groups yet." in await page.content()
    assert f"admin {ADMIN}: created shared group 'Sales' on localhost" in caplog.text
    assert f"admin {ADMIN}: removed bob@localhost from shared group 'Sales'" in caplog.text


async def test_group_forms_need_the_csrf_token_and_explain_mistakes(server: Harness) -> None:
    base = f"http://127.0.0.1:{server.http_port}"
    async with http_session() as s:
        await admin_login(s, base)
        r = await s.post(f"{base}/admin/groups/create", data={"name": "Sneaky", "host": "localhost"},
                         allow_redirects=False)
        assert r.status == 403 and "CSRF" in await r.text()
        csrf = csrf_of(await (await s.get(f"{base}/admin/groups")).text())
        for data, error in (
            ({"name": " ", "host": "localhost"}, "A group needs a name."),
            ({"name": "X", "host": "elsewhere.org"}, "elsewhere.org is not a host of this server"),
            ({"name": "X", "host": "localhost", "members": "zed@elsewhere.org"}, "is not an account of localhost"),
        ):
            r = await s.post(f"{base}/admin/groups/create", data={"csrf": csrf, **data})
            assert error in await r.text()
        r = await s.get(f"{base}/admin/groups", headers={"Accept-Language": "de"})
        assert "Gruppe erstellen" in await r.text()


async def test_groups_api(api: tuple[aiohttp.ClientSession, str], server: Harness) -> None:  # noqa: F811
    s, url = api
    await server.user("alice")
    r = await s.post(f"{url}/groups", json={"host": "localhost", "name": "Everybody", "everyone": True})
    assert r.status == 201 and (await r.json())["everyone"] is True
    r = await s.post(f"{url}/groups", json={"host": "localhost", "name": "Everybody"})
    assert r.status == 400 and "already a group" in (await r.json())["error"]
    r = await s.post(f"{url}/groups/localhost/Everybody/members", json={"member": "alice@localhost"})
    assert r.status == 200 and (await r.json())["members"] == ["alice@localhost"]
    groups = (await (await s.get(f"{url}/groups")).json())["groups"]
    assert groups == [{"host": "localhost", "name": "Everybody", "everyone": True, "directory_group": "",
                       "members": ["alice@localhost"]}]
    r = await s.delete(f"{url}/groups/localhost/Everybody/members/alice@localhost")
    assert r.status == 200 and (await r.json())["members"] == []
    r = await s.delete(f"{url}/groups/localhost/Everybody")
    assert r.status == 200 and (await r.json())["deleted"] == "Everybody"
    r = await s.delete(f"{url}/groups/localhost/Everybody")
    assert r.status == 404
