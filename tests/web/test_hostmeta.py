"""Host metadata (XEP-0156): XRD and JSON, with URLs for the scheme and Host the client used."""

from __future__ import annotations

import aiohttp
from lxml import etree

from tests.integration.harness import Harness
from tests.web.conftest import trust

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
