"""/chat: the web chat, Converse.js, served by Parlour itself and set up for this server.

The Converse.js files are vendored into the package at build time (`make webchat`, see
packaging/webchat/) and served from /static/chat/, so the page works on a LAN without internet. The page
hands Converse the server's domain; it connects over WebSocket on its own origin (BOSH when that
fails) and discovers the chat-room and upload services itself (XEP-0030), as any client would.
"""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable

from aiohttp import web

from appliance.util.i18n import _
from appliance.web.keys import CONFIG
from appliance.web.pages import render

PATH = "/chat"
ASSETS = "/static/chat/"

# Converse needs more than the other pages: inline styles (its components set them), images, sound and
# connections to this server's names on any port (the upload service's URLs may use another name or
# port than the page), and blobs. Nothing from elsewhere: its fullscreen footer's sponsor logos, links
# posted in a chat, stay unloaded (no third party learns who reads what).
def content_security_policy(hosts: list[str]) -> str:
    """The page's policy, allowing this server's own names (and their subdomains) on any port."""
    own = " ".join(f"https://{host}:* https://*.{host}:*" for host in hosts)
    return ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            f"img-src 'self' data: blob: {own}; media-src 'self' blob: {own}; "
            f"connect-src 'self' {own} {own.replace('https://', 'wss://')}; font-src 'self'; worker-src 'self'; "
            "manifest-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


def assets() -> Traversable:
    """The folder `make webchat` fills (appliance/web/static/chat)."""
    return resources.files("appliance.web") / "static" / "chat"


def version() -> str | None:
    """The vendored Converse.js version, or None when the web chat was not built into this copy."""
    try:
        return (assets() / "VERSION").read_text(encoding="utf-8").strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def _domain(request: web.Request) -> str:
    """The XMPP domain the page offers: the one the browser asked for when this server hosts it (a
    server with several hosts has a chat for each), else the first configured host."""
    hosts = [host.name for host in request.app[CONFIG].hosts]
    asked = (request.url.host or "").lower().rstrip(".")
    return asked if asked in hosts else (hosts[0] if hosts else asked)


async def chat_page(request: web.Request) -> web.Response:
    built = version()
    if built is None:
        response = render(request, "chat_missing.html", status=503,
                          reason=_("The web chat is not part of this build of Parlour (it is added by "
                                   "`make webchat`). Use an XMPP app instead."))
        return response
    hosts = [host.name for host in request.app[CONFIG].hosts]
    settings = {
        "assets": ASSETS,
        "domain": _domain(request),
        "jid": request.query.get("jid", "")[:3071],
        "hosts": hosts,  # images and media are shown inline only from this server's own names
        "version": built,
    }
    response = render(request, "chat.html", settings=settings, converse_version=built)
    response.headers["Content-Security-Policy"] = content_security_policy(hosts)
    return response


def setup(app: web.Application) -> None:
    app.router.add_get(PATH, chat_page)
    app.router.add_get(PATH + "/", _to_chat)


async def _to_chat(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(PATH + (f"?{request.query_string}" if request.query_string else ""))


__all__ = ["ASSETS", "PATH", "content_security_policy", "setup", "version"]
