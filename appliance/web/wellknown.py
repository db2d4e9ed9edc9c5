"""Host metadata (XEP-0156, RFC 6415): /.well-known/host-meta (XRD) and host-meta.json.

They tell web clients where BOSH and WebSocket live, as absolute URLs built from the scheme and
Host of the request, so the answer is right behind any name or port the client used. Over plain HTTP
an endpoint is listed only when a client could log in through it: with encryption required, a plain
BOSH or WebSocket session offers no SASL mechanism unless a loopback setting exempts this client.
"""

from __future__ import annotations

import json
from xml.sax.saxutils import quoteattr

from aiohttp import web

from appliance.config.model import Config
from appliance.web import bosh, websocket
from appliance.web.keys import CONFIG
from appliance.web.peer import http_peer

REL_BOSH = "urn:xmpp:alt-connections:xbosh"
REL_WEBSOCKET = "urn:xmpp:alt-connections:websocket"
NS_XRD = "http://docs.oasis-open.org/ns/xri/xrd-1.0"


def connection_links(request: web.Request) -> list[tuple[str, str]]:
    """(rel, href) for each alternative connection method this client can log in through, for the
    request's scheme and host."""
    config: Config = request.app[CONFIG]
    peer = http_peer(request)
    host = request.host
    http_scheme, ws_scheme = ("https", "wss") if peer.https else ("http", "ws")
    candidates = (
        (REL_BOSH, f"{http_scheme}://{host}{bosh.PATH}", config.http.consider_bosh_secure),
        (REL_WEBSOCKET, f"{ws_scheme}://{host}{websocket.PATH}", config.http.consider_websocket_secure),
    )
    c2s = config.c2s
    # The same rule as core.c2s.features.tls_required, seen from the web listener before any stream.
    exempt = not c2s.require_encryption or (c2s.allow_plaintext_on_loopback and peer.loopback)
    return [
        (rel, href) for rel, href, consider in candidates
        if exempt or peer.secure(consider_plain_secure=consider)
    ]


async def host_meta(request: web.Request) -> web.Response:
    """GET /.well-known/host-meta: the links as an XRD document."""
    links = "".join(
        f"\n  <Link rel={quoteattr(rel)} href={quoteattr(href)}/>" for rel, href in connection_links(request)
    )
    text = f"<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='{NS_XRD}'>{links}\n</XRD>\n"
    return web.Response(text=text, content_type="application/xrd+xml", headers=_headers(request))


async def host_meta_json(request: web.Request) -> web.Response:
    """GET /.well-known/host-meta.json: the same links as JSON (RFC 6415 §3)."""
    document = {"links": [{"rel": rel, "href": href} for rel, href in connection_links(request)]}
    return web.Response(text=json.dumps(document, indent=2) + "\n", content_type="application/json",
                        headers=_headers(request))


def _headers(request: web.Request) -> dict[str, str]:
    # Web clients on any origin may read these files: they hold nothing private.
    return {"Access-Control-Allow-Origin": "*"}


def setup(app: web.Application) -> None:
    """Add the host-meta routes to the application."""
    app.router.add_get("/.well-known/host-meta", host_meta)
    app.router.add_get("/.well-known/host-meta.json", host_meta_json)


__all__ = ["REL_BOSH", "REL_WEBSOCKET", "connection_links", "setup"]
