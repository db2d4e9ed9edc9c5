"""Small HTTP findings, over real sockets: what the Server header tells, malformed bodies, link hosts."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.integration.harness import Harness
from tests.web.console_helpers import ADMIN, admin_login, csrf_of, http_session


@pytest.fixture
def server(console_server: Harness) -> Harness:
    return console_server


def base(h: Harness) -> str:
    return f"http://127.0.0.1:{h.http_port}"


async def _raw(h: Harness, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", h.http_port)
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()


async def test_the_server_header_names_no_versions(server: Harness) -> None:
    async with http_session() as s:
        for path in ("/admin/login", "/.well-known/host-meta", "/no/such/page"):
            r = await s.get(base(server) + path)
            assert r.headers["Server"] == "Parlour", path
    # A request aiohttp refuses before any route runs.
    answer = await _raw(server, b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
    assert b" 400 Bad Request\r\n" in answer and b"\r\nServer: Parlour\r\n" in answer
    assert b"aiohttp" not in answer and b"Python" not in answer


TRUNCATED = (b"--b\r\nContent-Disposition: form-data; name=\"jid\"\r\n\r\nboss@localhost\r\n"
             b"--b\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nsec")


async def test_a_truncated_multipart_login_is_a_bad_request(server: Harness,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """The body ends inside a part (declared length, early end of the data): 400, and no traceback."""
    head = (f"POST /admin/login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {len(TRUNCATED)}\r\n\r\n")
    answer = await _raw(server, head.encode() + TRUNCATED)
    assert b" 400 Bad Request\r\n" in answer.split(b"\r\n", 1)[0] + b"\r\n", answer[:200]
    assert "Traceback" not in caplog.text and "Error handling request" not in caplog.text


async def test_invitation_links_name_the_server_not_the_requests_host(server: Harness) -> None:
    url, forged = base(server), {"Host": "evil.example"}
    expected = f"https://localhost:{server.https_port}/invite/"
    secret, _ = await server.server.services.tokens.create(ADMIN, "test")
    async with http_session() as s:
        r = await s.post(f"{url}/api/v1/invitations", headers={**forged, "Authorization": f"Bearer {secret}"})
        assert r.status == 201 and (await r.json())["url"].startswith(expected)
        await admin_login(s, url)
        page = await s.get(f"{url}/admin/invitations")
        r = await s.post(f"{url}/admin/invitations", data={"csrf": csrf_of(await page.text())}, headers=forged)
        link = re.search(r'value="([^"]+)"[^>]*id="new-link"', await r.text())
        assert link is not None and link[1].startswith(expected), link
