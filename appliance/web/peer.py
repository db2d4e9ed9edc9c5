"""What the web transports know about an HTTP peer: its address, TLS, channel bindings and Origin."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from appliance.net.addresses import peer_is_loopback


@dataclass(frozen=True, slots=True)
class HttpPeer:
    """The connection facts a client session's transport exposes (see core.c2s.Transport)."""

    ip: str
    loopback: bool
    https: bool
    channel_bindings: dict[str, bytes] = field(default_factory=dict)

    def secure(self, *, consider_plain_secure: bool) -> bool:
        """HTTPS is encrypted; plain HTTP counts only from loopback when the admin says a proxy encrypts."""
        return self.https or (self.loopback and consider_plain_secure)


def http_peer(request: web.Request) -> HttpPeer:
    """The peer of `request` as seen on the socket (forwarding headers are not trusted)."""
    transport = request.transport
    peername = transport.get_extra_info("peername") if transport is not None else None
    ip = peername[0] if peername else "?"
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    bindings: dict[str, bytes] = {}
    if ssl_object is not None:
        from appliance.net.tls import channel_bindings

        bindings = channel_bindings(ssl_object)
    https = ssl_object is not None
    return HttpPeer(ip=ip, loopback=peer_is_loopback(ip), https=https, channel_bindings=bindings)


def origin_allowed(request: web.Request, allowed: tuple[str, ...]) -> bool:
    """Whether a browser page from the request's Origin may use the transports.

    No list means any origin; a request without Origin comes from a non-browser client and is
    allowed, since Origin only protects users of browsers from pages they visit.
    """
    origin = request.headers.get("Origin")
    if not allowed or origin is None:
        return True
    return origin.strip().rstrip("/").lower() in allowed


def cors_headers(request: web.Request, allowed: tuple[str, ...]) -> dict[str, str]:
    """CORS response headers letting an allowed page read our answers (BOSH from another origin)."""
    origin = request.headers.get("Origin")
    if origin is None or not origin_allowed(request, allowed):
        return {}
    return {
        "Access-Control-Allow-Origin": origin if allowed else "*",
        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type",
        "Access-Control-Max-Age": "86400",
        "Vary": "Origin",
    }


__all__ = ["HttpPeer", "cors_headers", "http_peer", "origin_allowed"]
