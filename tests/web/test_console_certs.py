"""The certificates page (Chromium) and API: served certificates with days left, the local CA download that
verifies the server's certificate, the expiry banner on every page, and "renew now" without ACME."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path

import aiohttp
import pytest

from appliance.certs import selfsigned
from appliance.certs.acme.state import AcmeState
from appliance.services.ca_notes import ca_notes_text
from tests.integration.harness import Harness, free_port
from tests.web.console_helpers import (
    admin_login,
    configured_server,
    console_browser,
    csrf_of,
    http_session,
    loopback_listeners,
    needs_chromium,
    screenshot,
)
from tests.web.test_api import api  # noqa: F401 (fixture)


@pytest.fixture
def server(console_server: Harness) -> Harness:
    return console_server


def expiring_certificate(folder: Path, days: int) -> tuple[Path, Path]:
    """A certificate for expiring.example from its own CA, with `days` days left."""
    issued_at = dt.datetime.now(dt.UTC) - selfsigned.LEAF_LIFETIME + dt.timedelta(days=days, hours=12)
    made = selfsigned.ensure_self_signed(folder, ["expiring.example"], hostname="other-ca", now=issued_at)
    return made.chain, made.key


async def handshake(pem: str, port: int) -> dict[str, object]:
    """Connect to the server's direct-TLS port trusting only `pem`; return the peer certificate."""
    context = ssl.create_default_context(cadata=pem)
    _reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost")
    cert = writer.get_extra_info("peercert")
    writer.close()
    return cert


@needs_chromium
async def test_certificates_page_banner_and_renew_without_acme(server: Harness, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{server.http_port}"
    async with console_browser(base) as page:
        await page.get_by_role("link", name="Certificate details, renewal and the local CA").click()
        await page.wait_for_url("**/admin/certificates")
        row = page.locator("tbody tr", has_text="conference.localhost")
        cells = [await row.locator("td").nth(i).inner_text() for i in range(5)]
        assert "localhost" in cells[0] and cells[1] == "local CA"
        assert int(cells[4]) > 300  # the local leaf lasts about a year
        assert await page.locator(".cert-alert").count() == 0
        for platform in ("Windows", "macOS", "Android", "iOS", "Linux"):
            assert await page.locator("dt", has_text=platform).count() == 1
        await screenshot(page, "console-certificates")

        # Renew now without ACME: a plain answer, no trace.
        await page.get_by_role("button", name="Renew now").click()
        await page.wait_for_url("**/admin/certificates")
        error = await page.locator("p.error").inner_text()
        assert error.startswith("Automatic certificates (ACME) are not enabled on this server")
        assert "Traceback" not in await page.content()

        # A certificate with 5 days left: the banner is on every console page.
        chain, key = expiring_certificate(tmp_path / "imported", days=5)
        server.server.certs.add(chain, key)
        for path in ("/admin/", "/admin/users", "/admin/rooms", "/admin/certificates"):
            await page.goto(base + path)
            alert = await page.locator(".cert-alert").inner_text()
            assert "The certificate for expiring.example expires on" in alert and "(5 days left)" in alert
        row = page.locator("tbody tr.expiring", has_text="expiring.example")
        assert await row.locator("td").nth(1).inner_text() == "imported"
        assert (await row.locator("td.days-left").inner_text()).startswith("5")
        await screenshot(page, "console-certificates-expiring")
        await page.goto(f"{base}/admin/certificates?lang=de")
        assert "Zertifizierungsstelle" in await page.content() and "läuft am" in await page.content()
        await screenshot(page, "console-certificates-de")


async def test_ca_download_verifies_the_servers_certificate(server: Harness) -> None:
    base = f"http://127.0.0.1:{server.http_port}"
    async with http_session() as s:
        await admin_login(s, base)
        r = await s.get(f"{base}/admin/certificates/ca.pem")
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/x-x509-ca-cert"
        assert 'filename="ca.crt"' in r.headers["Content-Disposition"]
        pem = await r.text()
    assert pem.startswith("-----BEGIN CERTIFICATE-----") and pem.count("BEGIN CERTIFICATE") == 1
    assert pem == server.ca_file.read_text()
    peer = await handshake(pem, server.tls_port)
    assert ("DNS", "localhost") in peer["subjectAltName"]  # type: ignore[operator]
    with pytest.raises(ssl.SSLCertVerificationError):  # and the check is real: another CA fails
        other = selfsigned.ensure_self_signed(server.server.config.server.state_dir / "other", ["x.example"])
        await handshake(other.ca.read_text(), server.tls_port)


def test_cli_and_console_share_the_install_notes() -> None:
    text = ca_notes_text()
    for platform in ("Windows:", "macOS:", "Android:", "iOS:", "Linux:"):
        assert f"  {platform}" in text
    assert "Trusted Root Certification Authorities" in text and "update-ca-certificates" in text


async def test_certificates_api(api: tuple[aiohttp.ClientSession, str], server: Harness,  # noqa: F811
                                tmp_path: Path) -> None:
    s, url = api
    body = await (await s.get(f"{url}/certificates")).json()
    (local,) = body["certificates"]
    assert local["kind"] == "local-ca" and "localhost" in local["names"] and local["days_left"] > 300
    assert local["expiring"] is False
    assert body["acme"] == {"enabled": False, "last_attempt": None} and body["alerts"] == []

    chain, key = expiring_certificate(tmp_path / "imported", days=3)
    server.server.certs.add(chain, key)
    body = await (await s.get(f"{url}/certificates")).json()
    soon = next(c for c in body["certificates"] if c["names"] == ["expiring.example"])
    assert soon["kind"] == "imported" and soon["days_left"] == 3 and soon["expiring"] is True
    assert body["alerts"] == [f"The certificate for expiring.example expires on {soon['not_after'][:10]} "
                              "(3 days left)."]

    r = await s.post(f"{url}/certificates/renew")
    assert r.status == 400
    assert (await r.json())["error"].startswith("Automatic certificates (ACME) are not enabled on this server")

    r = await s.get(f"{url}/certificates/ca.pem")
    assert r.status == 200 and r.headers["Content-Type"] == "application/x-x509-ca-cert"
    assert await r.text() == server.ca_file.read_text()


async def test_renew_form_needs_the_csrf_token(server: Harness) -> None:
    base = f"http://127.0.0.1:{server.http_port}"
    async with http_session() as s:
        await admin_login(s, base)
        r = await s.post(f"{base}/admin/certificates/renew", allow_redirects=False)
        assert r.status == 403
        csrf = csrf_of(await (await s.get(f"{base}/admin/certificates")).text())
        r = await s.post(f"{base}/admin/certificates/renew", data={"csrf": csrf}, allow_redirects=False)
        assert r.status == 303


@needs_chromium
async def test_failed_renewal_shows_the_problem_with_its_fix_and_the_banner(tmp_path: Path) -> None:
    """ACME on, pointed at an authority that is not there: the real renewal path fails in plain words."""
    acme = {"enabled": True, "directory": f"https://127.0.0.1:{free_port()}/dir", "email": "boss@example.org",
            "agree_tos": True, "http_port": free_port()}
    h = await configured_server(tmp_path, extra={**loopback_listeners(), "acme": acme})
    base = f"http://127.0.0.1:{h.http_port}"
    try:
        async with console_browser(base) as page:
            await page.goto(f"{base}/admin/certificates")
            await page.get_by_role("button", name="Renew now").click()
            await page.wait_for_url("**/admin/certificates")
            assert (await page.locator("p.error").inner_text()).startswith("The renewal failed.")
            problems = page.locator("ul.problems li.error")
            assert await problems.count() >= 1
            text = await problems.first.inner_text()
            assert "How to fix it:" in text and "Traceback" not in await page.content()
            status = AcmeState(h.server.config.server.state_dir).load_status()
            assert status is not None and not status.ok
            assert status.problems[0].message in text and status.problems[0].hint in text
            assert "The last certificate renewal failed" in await page.locator(".cert-alert").inner_text()
            await screenshot(page, "console-certificates-acme-failed")
    finally:
        await h.close()
