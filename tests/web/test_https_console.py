"""After setup the console, its login, invitations, the API and /metrics are HTTPS-only for the LAN
(a client in a network namespace), while loopback, ACME challenges and XMPP-over-HTTP keep plain HTTP;
HTTPS answers carry HSTS; the wizard's last page links to the console over HTTPS."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from appliance.web.transport_security import HSTS
from tests.integration.harness import Harness
from tests.web.console_helpers import configured_server, http_session, loopback_listeners, setup_mode, walk_wizard_http
from tests.web.lan import LanClient, lan  # noqa: F401 (fixture)


@pytest.fixture
async def server(tmp_path: Path, lan: LanClient) -> AsyncIterator[Harness]:  # noqa: F811
    """A set-up server listening on loopback and on the LAN side of the namespace."""
    extra = loopback_listeners()
    extra["http"]["interfaces"] = ["127.0.0.1", lan.server_ip]
    h = await configured_server(tmp_path, extra=extra)
    try:
        yield h
    finally:
        await h.close()


async def test_plain_http_from_the_lan_is_sent_to_https(server: Harness, lan: LanClient) -> None:  # noqa: F811
    plain = f"http://{lan.server_ip}:{server.http_port}"
    https = f"https://{lan.server_ip}:{server.https_port}"
    for path in ("/admin/", "/admin/login?lang=de", "/invite/abc", "/api/v1/status", "/metrics"):
        r = await lan.fetch(plain + path)
        assert r.status == 307 and r.headers["Location"] == https + path, (path, r)
    r = await lan.fetch(plain + "/admin/login", "-X", "POST", "--data", "jid=boss@localhost&password=x")
    assert r.status == 307 and r.headers["Location"] == https + "/admin/login"
    # Followed (curl -k: the local CA's leaf names localhost, not this address): the login page, Secure cookies.
    r = await lan.fetch(plain + "/admin/login", "-L", "-k")
    assert r.status == 200 and "Log in" in r.body
    assert all("Secure" in cookie for cookie in r.headers.getall("Set-Cookie"))
    # What stays plain: XMPP discovery and transports, ACME challenges, static files.
    assert (await lan.fetch(plain + "/.well-known/host-meta")).status == 200
    assert (await lan.fetch(plain + "/.well-known/acme-challenge/unknown")).status == 404
    assert (await lan.fetch(plain + "/static/parlour.css")).status == 200
    async with http_session() as local:  # loopback keeps plain HTTP (a local browser or reverse proxy)
        r = await local.get(f"http://127.0.0.1:{server.http_port}/admin/login")
        assert r.status == 200


async def test_https_answers_carry_hsts_for_names(server: Harness) -> None:
    context = ssl.create_default_context(cafile=str(server.ca_file))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as s:
        url = f"https://localhost:{server.https_port}"
        named = await s.get(f"{url}/admin/login", headers={"Host": f"chat.example:{server.https_port}"},
                            server_hostname="localhost")
        assert named.headers["Strict-Transport-Security"] == HSTS
        wellknown = await s.get(f"{url}/.well-known/host-meta", headers={"Host": "chat.example"},
                                server_hostname="localhost")
        assert wellknown.headers["Strict-Transport-Security"] == HSTS
        # Not for an IP address (browsers ignore it) nor localhost (it would bind every local project).
        by_ip = await s.get(f"https://127.0.0.1:{server.https_port}/admin/login", server_hostname="localhost")
        assert "Strict-Transport-Security" not in by_ip.headers
        assert "Strict-Transport-Security" not in (await s.get(f"{url}/admin/login")).headers
    async with http_session() as s:  # never over plain HTTP (RFC 6797 §7.2)
        r = await s.get(f"http://127.0.0.1:{server.http_port}/admin/login", headers={"Host": "chat.example"})
        assert "Strict-Transport-Security" not in r.headers


async def test_the_wizard_ends_with_a_link_to_the_console_over_https(tmp_path: Path) -> None:
    mode = setup_mode(tmp_path)
    await mode.start()
    tls_port = mode.extra["http"]["tls_port"]
    try:
        async with http_session() as s:
            done = await walk_wizard_http(s, f"http://127.0.0.1:{mode.port}", mode.token.value)
        assert f'href="https://127.0.0.1:{tls_port}/admin/"' in done
        assert f'href="https://127.0.0.1:{tls_port}/chat"' in done  # the web chat, for those without an app
    finally:
        await mode.stop()
