"""The wizard's optional "company directory" step in Chromium against a real slapd: a wrong service password
is explained, the live test finds a user, and the finished setup logs directory users in; the console's
directory page shows the status and runs the test again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.directory.slapd import GROUPS, PASSWORDS, PEOPLE, SERVICE_DN, SERVICE_PASSWORD, Slapd, slapd  # noqa: F401
from tests.directory.test_ldap import ldap_config
from tests.integration.harness import Client, Harness
from tests.web.console_helpers import (
    ADMIN_PASSWORD,
    CHROMIUM,
    CHROMIUM_ARGS,
    configured_server,
    console_browser,
    screenshot,
    setup_mode,
)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)")


async def test_directory_step_tests_the_connection_and_sets_up_logins(tmp_path: Path, slapd: Slapd) -> None:  # noqa: F811
    playwright_api = pytest.importorskip("playwright.async_api", reason="needs `pip install playwright`")
    mode = setup_mode(tmp_path)
    urls = await mode.start()
    base = f"http://127.0.0.1:{mode.port}"
    try:
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = await (await browser.new_context(viewport={"width": 700, "height": 1200})).new_page()
                await page.goto(urls[0] + "&lang=en")
                await page.wait_for_url("**/setup/language*")
                await page.goto(base + "/setup/name")
                await page.get_by_label("Server name").fill("localhost")
                await page.get_by_role("button", name="Continue").click()
                await page.goto(base + "/setup/admin")
                await page.get_by_label("User name").fill("boss")
                await page.get_by_label("Password", exact=True).fill(ADMIN_PASSWORD)
                await page.get_by_label("Password again").fill(ADMIN_PASSWORD)
                await page.get_by_role("button", name="Continue").click()
                await page.wait_for_url("**/setup/registration")
                await page.get_by_role("button", name="Continue").click()
                await page.wait_for_url("**/setup/directory")

                await page.get_by_label("Use a company directory").check()
                await page.get_by_label("Address", exact=True).fill(slapd.uri)
                await page.get_by_label("CA certificate of the directory (PEM, optional)").set_input_files(
                    str(slapd.ca.ca))
                await page.get_by_label("Service account (bind DN)").fill(SERVICE_DN)
                await page.get_by_label("Service account password").fill("not the password")
                await page.get_by_label("Where the users are (base DN)").fill(PEOPLE)
                await page.get_by_label("A user to look for").fill("alice")
                await page.get_by_role("button", name="Test connection and find this user").click()
                check = page.locator("#directory-check")
                await check.wait_for()
                assert "refused the service account" in await check.inner_text()

                await page.get_by_label("Service account password").fill(SERVICE_PASSWORD)
                await page.get_by_role("button", name="Test connection and find this user").click()
                await page.wait_for_selector("text=Found Alice Liddell (alice@example.test).")
                text = await page.locator("#directory-check").inner_text()
                assert "(StartTLS)" in text and "5 users under" in text
                await screenshot(page, "wizard-directory")
                await page.get_by_role("button", name="Continue").click()
                await page.wait_for_url("**/setup/features")
                await page.get_by_role("button", name="Continue").click()
                await page.wait_for_url("**/setup/database")  # the built-in database, as offered
                await page.get_by_role("button", name="Continue").click()
                await page.wait_for_url("**/setup/review")
                assert await page.locator(".review-directory").inner_text() == slapd.uri
                await page.get_by_role("button", name="Finish setup").click()
                await page.wait_for_selector("text=Your server is ready")
            finally:
                await browser.close()
        await asyncio.wait_for(mode.switched.wait(), 20)
        server = mode.server
        assert server is not None
        written = (tmp_path / "parlour.toml").read_text()
        assert f'uri = "{slapd.uri}"' in written and "directory-ca.pem" in written
        harness = Harness(server)
        client = Client("alice@localhost/test", PASSWORDS["alice"], harness.ca_file)
        client.connect(host="127.0.0.1", port=server.ports["c2s"])
        await asyncio.wait_for(client.started.wait(), 15)  # a directory user logs in to the new server
        client.disconnect()
    finally:
        await mode.stop()


async def test_console_shows_the_directory_status_and_tests_it(tmp_path: Path, slapd: Slapd) -> None:  # noqa: F811
    server = await configured_server(tmp_path, ldap=ldap_config(slapd))  # setup writes [ldap]
    try:
        base = f"http://127.0.0.1:{server.http_port}"
        async with console_browser(base) as page:
            await page.get_by_role("link", name="Directory").click()
            await page.wait_for_url("**/admin/directory")
            for _ in range(100):  # the check made at start fills the status
                if await page.locator(".directory-users").inner_text() == "5":
                    break
                await asyncio.sleep(0.1)
                await page.reload()
            assert await page.locator(".directory-state").inner_text() == "reachable"
            await page.get_by_label("Find this user (optional)").fill("bob")
            await page.get_by_role("button", name="Test now").click()
            await page.wait_for_selector("text=Found Bob Builder (bob@example.test).")
            await screenshot(page, "console-directory")
            await page.get_by_label("Find this user (optional)").fill("zed")
            await page.get_by_role("button", name="Test now").click()
            await page.wait_for_selector("text=no user 'zed' found")
            assert "no user 'zed' found" in await page.locator(".directory-error").inner_text()

            # A shared group from a nested directory group, made in the console: alice sees bob and carol.
            await page.goto(f"{base}/admin/groups")
            await page.get_by_label("Group name").fill("Staff")
            offered = page.locator("#directory-groups option")  # the directory's groups, to pick from
            assert f"cn=staff,{GROUPS}" in [await o.get_attribute("value") for o in await offered.all()]
            await page.get_by_label("Directory group (optional)").fill(f"cn=staff,{GROUPS}")
            await page.get_by_role("button", name="Create group").click()
            await page.wait_for_selector("text=Group Staff created.")
            assert f"directory group cn=staff,{GROUPS}" in await page.locator("tr.group-row").inner_text()
        alice = await server.client("alice@localhost", PASSWORDS["alice"])
        assert set(alice.client_roster) == {"bob@localhost", "carol@localhost"}
        assert alice.client_roster["carol@localhost"]["groups"] == ["Staff"]
    finally:
        await server.close()
