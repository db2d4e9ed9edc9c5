"""Server-rendered HTML: the jinja2 environment, the language of each request and safe page headers.

Shared by the setup wizard, the admin console and the invitation signup page.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import jinja2
from aiohttp import web

from appliance import __version__
from appliance.util import i18n

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LANGUAGE_KEY = web.AppKey("page_language", str)  # "auto" or a fixed language from console.language

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("appliance.web", "templates"),
    autoescape=True,
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.install_gettext_callables(i18n.gettext_, i18n.ngettext_, newstyle=True)  # type: ignore[attr-defined]
_ENV.globals.update(version=__version__, languages=i18n.LANGUAGES)

# Pages never load anything from elsewhere; the wizard's and invitations' tokens never leave in a Referer.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def render(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    """Render a page in the request's language."""
    context.setdefault("lang", i18n.current_language())
    context.setdefault("path", request.path)
    html = _ENV.get_template(template).render(**context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def request_language(request: web.Request) -> str:
    """?lang=, then the language cookie, then a fixed console.language, then Accept-Language, then English."""
    asked = request.query.get("lang")
    if asked in i18n.LANGUAGES:
        return asked  # type: ignore[return-value]
    cookie = request.cookies.get(i18n.COOKIE)
    if cookie in i18n.LANGUAGES:
        return cookie  # type: ignore[return-value]
    fixed = request.app.get(LANGUAGE_KEY, "auto")
    if fixed in i18n.LANGUAGES:
        return fixed
    return i18n.negotiate(request.headers.get("Accept-Language")) or i18n.DEFAULT


@web.middleware
async def page_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Set the language for this request, remember a ?lang= choice, add the security headers."""
    if not is_page_path(request.path):
        return await handler(request)  # BOSH, WebSocket, host-meta, API: no pages
    lang = request_language(request)
    token = i18n.set_language(lang)
    try:
        await _read_form(request)
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
        _headers(request, response, lang)
        raise
    finally:
        i18n._current.reset(token)
    _headers(request, response, lang)
    return response


FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


async def _read_form(request: web.Request) -> None:
    """Parse a posted form once, here: a body that ends early or breaks the multipart format is the
    client's fault (400), not an error of the page (500 with a traceback). Handlers get the cached form."""
    if request.method != "POST" or request.content_type not in FORMS:
        return
    try:
        await request.post()
    except (ValueError, LookupError) as exc:  # aiohttp: "Reading after EOF", bad boundary, unknown charset
        log.info("malformed form posted to %s from %s: %s", request.path, request.remote, exc)
        raise web.HTTPBadRequest(text="The form data is incomplete or malformed.") from None


def _headers(request: web.Request, response: web.StreamResponse, lang: str) -> None:
    if request.path.startswith("/static/"):
        # Files of the package (the web chat's are megabytes): kept, but revalidated (Last-Modified) so
        # an upgrade is seen at once; pages themselves are never stored.
        response.headers.setdefault("Cache-Control", "no-cache")
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.query.get("lang") == lang:
        response.set_cookie(i18n.COOKIE, lang, max_age=365 * 86400, httponly=True, samesite="Strict",
                            secure=request.secure, path="/")


def is_page_path(path: str) -> bool:
    return path.startswith(("/setup", "/admin", "/invite", "/static/", "/chat")) or path == "/"


def static_routes(app: web.Application) -> None:
    """The stylesheet and the one small script, from the package."""
    from importlib import resources

    folder = resources.files("appliance.web") / "static"
    app.router.add_static("/static/", str(folder), append_version=False, follow_symlinks=False)


__all__ = ["LANGUAGE_KEY", "page_middleware", "render", "request_language", "static_routes"]
