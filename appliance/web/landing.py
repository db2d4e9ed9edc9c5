"""`/` on the web port once Parlour is set up: the admin console when it is served, else a short page
saying what answers here (a bare 404 left people who had just finished the wizard wondering)."""

from __future__ import annotations

import html

from aiohttp import web

CONSOLE = "/admin/"


async def to_console(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(CONSOLE)


def landing_page(host: str) -> str:
    """The page for a server without its console: the address to give an XMPP client."""
    name = html.escape(host)
    return (
        "<!doctype html>\n<html lang='en'><meta charset='utf-8'><title>Parlour</title>\n"
        f"<h1>Parlour</h1>\n<p>This is the XMPP server for <b>{name}</b>. Sign in with an XMPP client"
        f" (Conversations, Gajim, Dino, Monal ...) using an address like <code>you@{name}</code>.</p>\n"
    )


def setup(app: web.Application, *, console: bool, host: str) -> None:
    """Add the `/` route: a redirect to the console, or the landing page for `host`."""
    if console:
        app.router.add_get("/", to_console)
        return
    page = landing_page(host)

    async def landing(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app.router.add_get("/", landing)


__all__ = ["setup"]
