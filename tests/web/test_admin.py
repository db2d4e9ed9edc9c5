"""Setup token, the end of setup, CSRF, login throttling and who may reach /admin and /api — over HTTP
against real servers on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from appliance.xmpp.jid import JID
from tests.integration.harness import PASSWORD, Harness
from tests.web.console_helpers import (
    ADMIN,
    ADMIN_PASSWORD,
    admin_login,
    csrf_of,
    http_session,
    setup_mode,
    walk_wizard_http,
)


@pytest.fixture
def server(console_server: Harness) -> Harness:
    return console_server


def base(h: Harness) -> str:
    return f"http://127.0.0.1:{h.http_port}"


async def test_setup_needs_the_token_and_it_works_only_until_setup_completes(tmp_path: Path) -> None:
    mode = setup_mode(tmp_path)
    await mode.start()
    url = f"http://127.0.0.1:{mode.port}"
    token = mode.token.value
    assert (tmp_path / "state" / "setup-token").stat().st_mode & 0o777 == 0o600
    try:
        async with http_session() as s:
            for path in ("/setup", "/setup?token=", "/setup?token=wrong", f"/setup?token={token[:-1]}",
                         "/setup/language", "/setup/review"):
                r = await s.get(url + path, allow_redirects=False)
                assert r.status == 403, path
                assert "one-time token" in await r.text()
            r = await s.post(url + "/setup/review", data={"action": "finish"}, allow_redirects=False)
            assert r.status == 403
            assert not (tmp_path / "parlour.toml").exists()

            await walk_wizard_http(s, url, token)
            await asyncio.wait_for(mode.switched.wait(), 20)
            assert mode.server is not None and mode.failed is None
            # one database open: the wizard created the administrator in the store the server now runs on
            assert mode.server.storage is mode.storage is not None
            assert not (tmp_path / "state" / "setup-token").exists()
            assert mode.token.check(token) is False
            async with http_session() as fresh:
                r = await fresh.get(f"{url}/setup?token={token}", allow_redirects=False)
                assert r.status == 404
    finally:
        await mode.stop()


SETUP_VARIANTS = [
    "/setup", "/setup/", "/SETUP", "/Setup/", "/setup/language", "/setup/review", "/setup/check-name?name=x",
    "/setup?token=x", "/setup/../setup", "/%73etup", "/setup%2F", "/setup%2flanguage", "/%2e%2e/setup",
    "/admin/%2e%2e/setup", "/admin/../setup", "/static/../setup", "//setup", "/setup;x", "/setup.html",
    "/setup/%2e%2e/setup", "/./setup",
]


async def test_no_setup_page_is_served_after_completion(tmp_path: Path) -> None:
    mode = setup_mode(tmp_path)
    await mode.start()
    url = f"http://127.0.0.1:{mode.port}"
    try:
        async with http_session() as s:
            await walk_wizard_http(s, url, mode.token.value)
            await asyncio.wait_for(mode.switched.wait(), 20)
            for path in SETUP_VARIANTS:
                for method in ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"):
                    r = await s.request(method, URL(url + path, encoded=True), allow_redirects=False)
                    assert r.status == 404, (method, path, r.status)
                    if method != "HEAD":
                        assert "wizard" not in (await r.text()).lower()
            r = await s.get(url + "/admin/login")  # the full server took over the same port
            assert r.status == 200
            r = await s.get(url + "/", allow_redirects=False)  # no bare 404 at the front door
            assert (r.status, r.headers.get("Location")) == (302, "/admin/")
    finally:
        await mode.stop()


async def test_every_console_form_needs_the_csrf_token(server: Harness) -> None:
    url = base(server)
    async with http_session() as s:
        status, _ = await admin_login(s, url)
        assert status == 200
        for data in ({"jid": "mallory@localhost", "password": PASSWORD},
                     {"jid": "mallory@localhost", "password": PASSWORD, "csrf": "forged"}):
            r = await s.post(f"{url}/admin/users/create", data=data, allow_redirects=False)
            assert r.status == 403
            assert "CSRF" in await r.text()
        assert not await server.server.accounts.exists(JID.parse("mallory@localhost"))  # type: ignore[union-attr]
        for path in ("/admin/invitations", "/admin/tokens", "/admin/settings", "/admin/users/delete",
                     "/admin/logout"):
            r = await s.post(url + path, data={"jid": ADMIN}, allow_redirects=False)
            assert r.status == 403, path
        page = await s.get(f"{url}/admin/users")
        r = await s.post(f"{url}/admin/users/create", allow_redirects=False,
                         data={"jid": "mallory@localhost", "password": PASSWORD, "csrf": csrf_of(await page.text())})
        assert r.status == 303
        assert await server.server.accounts.exists(JID.parse("mallory@localhost"))  # type: ignore[union-attr]
    async with http_session() as s:  # the login form itself
        r = await s.post(f"{url}/admin/login", data={"jid": ADMIN, "password": "admin secret 1"},
                         allow_redirects=False)
        assert r.status == 403


async def test_failed_logins_are_throttled(server: Harness) -> None:
    url = base(server)
    limit = server.server.config.console.login_failures
    async with http_session() as s:
        for _ in range(limit):
            status, text = await admin_login(s, url, password="wrong password")
            assert status == 401
            assert "Wrong address or password" in text
        status, text = await admin_login(s, url)  # the right password, but blocked now
        assert status == 429
        assert "Too many failed logins" in text
        assert s.cookie_jar.filter_cookies(URL(url + "/admin/")).get("parlour_admin") is None


async def test_a_non_admin_account_cannot_reach_the_console_or_the_api(server: Harness) -> None:
    url = base(server)
    await server.user("alice")
    async with http_session() as s:
        r = await s.get(f"{url}/admin/", allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/admin/login"
        status, text = await admin_login(s, url, "alice@localhost", PASSWORD)
        assert status == 403
        assert "alice@localhost is not an administrator" in text and "server.admins" in text
        r = await s.get(f"{url}/admin/users", allow_redirects=False)
        assert r.status == 303
        r = await s.get(f"{url}/api/v1/status")
        assert r.status == 401 and "bearer token" in (await r.json())["error"]
        r = await s.get(f"{url}/api/v1/users", headers={"Authorization": "Bearer plr_made_up"})
        assert r.status == 401
        # An administrator's token stops working when that account is no longer an administrator.
        admin = server.server.services
        secret, _ = await admin.tokens.create(ADMIN, "test")
        ok = await s.get(f"{url}/api/v1/status", headers={"Authorization": f"Bearer {secret}"})
        assert ok.status == 200
        await admin.settings.apply(ADMIN, {"server.admins": ["other@localhost"]})
        r = await s.get(f"{url}/api/v1/status", headers={"Authorization": f"Bearer {secret}"})
        assert r.status == 403 and "no longer an administrator" in (await r.json())["error"]


async def test_an_expired_session_says_so(server: Harness) -> None:
    url = base(server)
    async with http_session() as s:
        await admin_login(s, url)
        s.cookie_jar.update_cookies({"parlour_admin": "stale"}, URL(url + "/admin/"))
        r = await s.get(f"{url}/admin/")
        assert "Your session has expired" in await r.text()


CONSOLE_PAGES_DE = {
    "/admin/": ["Übersicht", "Sitzungen online", "Nachrichten heute", "Zertifikate"],
    "/admin/users": ["Benutzer", "Ein Konto anlegen", "Passwort zurücksetzen"],
    "/admin/invitations": ["Einladungen", "Einladungslink erstellen"],
    "/admin/sessions": ["Sitzungen online"],
    "/admin/settings": ["Einstellungen", "Speichern"],
    "/admin/logs": ["Protokoll", "Anzeigen"],
    "/admin/tokens": ["API-Schlüssel", "Schlüssel erstellen"],
}


async def test_console_pages_in_german(server: Harness) -> None:
    url = base(server)
    async with http_session() as s:
        status, text = await admin_login(s, url, **{"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
        assert status == 200 and 'lang="de"' in text
        for path, phrases in CONSOLE_PAGES_DE.items():
            r = await s.get(url + path, headers={"Accept-Language": "de"})
            page = await r.text()
            assert r.status == 200, path
            for phrase in phrases:
                assert phrase in page, (path, phrase)
        r = await s.get(f"{url}/admin/?lang=fr")  # the switcher wins over the browser, and sticks
        assert "Tableau de bord" in await r.text()
        r = await s.get(f"{url}/admin/users", headers={"Accept-Language": "de"})
        assert "Utilisateurs" in await r.text()


async def test_admin_actions_are_logged_with_who_did_them(server: Harness, caplog: pytest.LogCaptureFixture) -> None:
    url = base(server)
    caplog.set_level("INFO", logger="appliance.admin")
    async with http_session() as s:
        await admin_login(s, url)
        page = await s.get(f"{url}/admin/users")
        await s.post(f"{url}/admin/users/create",
                     data={"jid": "carol", "password": PASSWORD, "csrf": csrf_of(await page.text())})
    assert f"admin {ADMIN}: created account carol@localhost" in caplog.text
    assert f"admin {ADMIN}: logged in" in caplog.text


async def test_pages_carry_strict_security_headers(server: Harness) -> None:
    async with http_session() as s:
        r = await s.get(f"{base(server)}/admin/login")
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        assert r.headers["Referrer-Policy"] == "no-referrer"
        cookie = r.headers.getall("Set-Cookie")[0]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


async def test_https_console_cookies_are_secure(server: Harness) -> None:
    ctx = __import__("ssl").create_default_context(cafile=str(server.ca_file))
    ctx.check_hostname = False
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                     connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        url = f"https://127.0.0.1:{server.https_port}"
        status, _ = await admin_login(s, url)
        assert status == 200
        login = await s.get(f"{url}/admin/login")
        assert "Secure" in login.headers.getall("Set-Cookie")[0]


async def test_wizard_puts_the_data_in_postgresql_after_a_live_connection_test(tmp_path: Path, postgres) -> None:  # type: ignore[no-untyped-def]
    """The optional database step: a PostgreSQL address is tested live (refused with the reason when it
    does not answer or is no PostgreSQL URL), then the administrator is created in that database and the
    server runs on it."""
    import psycopg

    from tests.integration.harness import free_port

    url = postgres.create_database()
    mode = setup_mode(tmp_path)
    await mode.start()
    base = f"http://127.0.0.1:{mode.port}"
    try:
        async with http_session() as s:
            page = await s.get(f"{base}/setup?token={mode.token.value}")
            csrf = csrf_of(await page.text())
            dead = f"postgresql://parlour@127.0.0.1:{free_port()}/parlour"  # nothing listens there
            for bad, why in ((dead, "cannot connect to this database"), ("mysql://x/y", "postgresql://")):
                r = await s.post(f"{base}/setup/database", data={
                    "csrf": csrf, "database": "postgresql", "database_url": bad, "action": "check"})
                assert r.status == 400 and why in await r.text(), bad
            r = await s.post(f"{base}/setup/database", data={
                "csrf": csrf, "database": "postgresql", "database_url": url, "action": "check"})
            text = await r.text()
            assert r.status == 200 and "Connected to PostgreSQL database" in text and "create its tables" in text
            await walk_wizard_http(s, base, mode.token.value, {"database": "postgresql", "database_url": url})
            await asyncio.wait_for(mode.switched.wait(), 20)
            assert mode.server is not None and mode.failed is None
            assert f'url = "{url}"' in (tmp_path / "parlour.toml").read_text()
            with psycopg.connect(url) as conn:  # the administrator is in PostgreSQL
                assert conn.execute("SELECT username FROM accounts").fetchall() == [("boss",)]
            assert mode.server.accounts is not None
            assert await mode.server.accounts.verify_plain(JID.parse(ADMIN), ADMIN_PASSWORD)
    finally:
        await mode.stop()
