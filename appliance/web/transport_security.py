"""HTTPS for what carries passwords and sessions: plain HTTP is redirected, HTTPS answers carry HSTS,
and no answer names the Python or aiohttp version.

Plain HTTP stays for what needs it: ACME challenges, XMPP over BOSH/WebSocket (their own policy),
host-meta, uploads (their URLs are HTTPS already), the setup wizard (a separate application, served
before any certificate exists) and loopback clients (a local reverse proxy, a local browser).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import hdrs, web, web_response

from appliance.net.addresses import peer_is_loopback

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SERVER = "Parlour"
HSTS = "max-age=31536000"  # one year, without includeSubDomains: other sites may live under the domain
HTTPS_ONLY = ("/admin", "/invite/", "/api/", "/metrics", "/chat")  # logins, sessions, tokens, passwords


@dataclass(slots=True)
class HttpsListener:
    """The bound HTTPS port, once there is one (no certificate or http.https = false: never)."""

    port: int = 0


HTTPS: web.AppKey[HttpsListener] = web.AppKey("https_listener", HttpsListener)


def hide_server_version() -> None:
    """Make every aiohttp answer of this process say `Server: Parlour`.

    aiohttp fills in "Python/3.x aiohttp/3.y" for every response, including those it makes itself for a
    malformed request before any application code runs, so the default is replaced at its source.
    """
    web_response.SERVER_SOFTWARE = SERVER  # type: ignore[attr-defined]


def https_url(request: web.Request, port: int, path: str | None = None) -> str:
    """This request's URL (or `path` on the same host) over HTTPS on `port`."""
    url = request.url.with_scheme("https").with_port(None if port == 443 else port)
    return str(url.with_path(path).with_query(None) if path is not None else url)


def setup(app: web.Application) -> HttpsListener:
    """Add the redirect and HSTS to `app`; the returned holder gets the HTTPS port once it is bound."""
    listener = app[HTTPS] = HttpsListener()
    app.middlewares.insert(0, https_middleware)
    app.on_response_prepare.append(_strict_transport)
    return listener


@web.middleware
async def https_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Send plain-HTTP requests for the console, invitations, the API and /metrics to HTTPS."""
    port = request.app[HTTPS].port
    if (port and not request.secure and request.path.startswith(HTTPS_ONLY)
            and not peer_is_loopback(request.remote or "")):
        # 307 keeps the method and is not cached for good: tls_port may change in the settings.
        raise web.HTTPTemporaryRedirect(https_url(request, port))
    return await handler(request)


async def _strict_transport(request: web.Request, response: web.StreamResponse) -> None:
    # Browsers ignore HSTS for IP addresses; for localhost it would upgrade every other local project.
    host = request.url.host or ""
    if request.secure and host != "localhost" and not _is_ip(host):
        response.headers[hdrs.STRICT_TRANSPORT_SECURITY] = HSTS


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


__all__ = ["HSTS", "HTTPS", "HTTPS_ONLY", "SERVER", "HttpsListener", "hide_server_version", "https_url",
           "setup"]
