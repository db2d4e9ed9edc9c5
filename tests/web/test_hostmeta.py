"""Host metadata (XEP-0156): XRD and JSON, with URLs for the scheme and Host the client used."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import aiohttp
from lxml import etree

from tests.integration.harness import Harness, make_config, start_harness
from tests.web.conftest import trust, web_harness

XRD = "{http://docs.oasis-open.org/ns/xri/xrd-1.0}"
BOSH = "urn:xmpp:alt-connections:xbosh"
WEBSOCKET = "urn:xmpp:alt-connections:websocket"


async def test_host_meta_xml(harness: Harness) -> None:
    async with aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{harness.http_port}"
        async with http.get(f"{base}/.well-known/host-meta") as response:
            assert response.status == 200
            assert response.content_type == "application/xrd+xml"
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            xrd = etree.fromstring(await response.read())
    links = {link.get("rel"): link.get("href") for link in xrd.iter(f"{XRD}Link")}
    assert links == {
        BOSH: f"http://127.0.0.1:{harness.http_port}/http-bind",
        WEBSOCKET: f"ws://127.0.0.1:{harness.http_port}/xmpp-websocket",
    }


async def test_host_meta_json_over_https_uses_secure_schemes(harness: Harness) -> None:
    async with aiohttp.ClientSession() as http:
        base = f"https://localhost:{harness.https_port}"
        async with http.get(f"{base}/.well-known/host-meta.json", ssl=trust(harness)) as response:
            assert response.status == 200
            document = await response.json()
    links = {link["rel"]: link["href"] for link in document["links"]}
    assert links == {
        BOSH: f"https://localhost:{harness.https_port}/http-bind",
        WEBSOCKET: f"wss://localhost:{harness.https_port}/xmpp-websocket",
    }


async def test_host_meta_follows_the_host_header(harness: Harness) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{harness.http_port}/.well-known/host-meta.json"
        async with http.get(url, headers={"Host": "chat.example.org"}) as response:
            document = await response.json()
    assert {link["href"] for link in document["links"]} == {
        "http://chat.example.org/http-bind", "ws://chat.example.org/xmpp-websocket",
    }


async def links_over_plain_http(h: Harness) -> tuple[set[str], set[str]]:
    """The hrefs of host-meta (XRD) and host-meta.json fetched over plain HTTP from loopback."""
    base = f"http://127.0.0.1:{h.http_port}/.well-known"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/host-meta") as response:
            xrd = etree.fromstring(await response.read())
        async with http.get(f"{base}/host-meta.json") as response:
            document = await response.json()
    return {link.get("href") for link in xrd.iter(f"{XRD}Link")}, {link["href"] for link in document["links"]}


async def test_plain_http_lists_only_endpoints_that_offer_a_login(tmp_path: Path) -> None:
    """With encryption required, ws:// and http:// sessions offer no SASL mechanism: listing them makes
    clients hang. HTTPS still lists both; the loopback settings bring back what they make usable."""
    h = await web_harness(tmp_path)
    try:
        assert await links_over_plain_http(h) == (set(), set())
        async with aiohttp.ClientSession() as http:
            url = f"https://localhost:{h.https_port}/.well-known/host-meta.json"
            async with http.get(url, ssl=trust(h)) as response:
                assert len((await response.json())["links"]) == 2
    finally:
        await h.close()
    ws_only = await web_harness(tmp_path / "ws", consider_websocket_secure=True)
    try:
        ws = f"ws://127.0.0.1:{ws_only.http_port}/xmpp-websocket"
        assert await links_over_plain_http(ws_only) == ({ws}, {ws})
    finally:
        await ws_only.close()
    exempt = await start_harness(tmp_path / "exempt", c2s=replace(
        make_config(tmp_path / "exempt").c2s, allow_plaintext_on_loopback=True))
    try:
        both = {f"http://127.0.0.1:{exempt.http_port}/http-bind", f"ws://127.0.0.1:{exempt.http_port}/xmpp-websocket"}
        assert await links_over_plain_http(exempt) == (both, both)
    finally:
        await exempt.close()
