"""/invite/<token>: the landing page of an invitation (XEP-0401 §5.2, like Snikket's): a QR code, the
"open in the app" link (the xmpp: URI with the preauth token), where to get an app for each platform,
and, instead of an app, a form that makes the account here and leads to the web chat."""

from __future__ import annotations

from aiohttp import web

from appliance.services.errors import ServiceError
from appliance.storage.api import Invitation
from appliance.util.i18n import _
from appliance.web.keys import ADMIN, CONFIG
from appliance.web.pages import render
from appliance.web.setup.mode import qr_svg

# Where to get an app, per platform (XEP-0401 §5.2: a client recommendation with download links).
APPS = (
    ("android", "Android", (("Conversations", "https://play.google.com/store/apps/details?id=eu.siacs.conversations"),
                            ("Conversations (F-Droid)", "https://f-droid.org/packages/eu.siacs.conversations/"))),
    ("ios", "iPhone / iPad", (("Monal", "https://apps.apple.com/app/id317711500"),
                              ("Siskin IM", "https://apps.apple.com/app/id1153516838"))),
    ("windows", "Windows", (("Gajim", "https://gajim.org/download/"),)),
    ("linux", "Linux", (("Dino", "https://dino.im/#download"), ("Gajim", "https://gajim.org/download/"))),
    ("mac", "macOS", (("Monal", "https://apps.apple.com/app/id317711500"),)),
)


def platform_of(user_agent: str) -> str:
    """The platform a browser runs on, from its User-Agent (for putting its apps first)."""
    ua = user_agent.lower()
    for key, needles in (("android", ("android",)), ("ios", ("iphone", "ipad", "ipod")),
                         ("windows", ("windows",)), ("mac", ("macintosh", "mac os")), ("linux", ("linux",))):
        if any(n in ua for n in needles):
            return key
    return ""


def _apps(request: web.Request) -> list[tuple[str, str, tuple[tuple[str, str], ...]]]:
    mine = platform_of(request.headers.get("User-Agent", ""))
    return sorted(APPS, key=lambda entry: entry[0] != mine)


def _gone(request: web.Request) -> web.Response:
    return render(request, "invite.html", status=404, invalid=True,
                  reason=_("This invitation link is not valid: it has expired, was used already or was revoked. "
                           "Ask an administrator for a new one."))


def _landing(request: web.Request, record: Invitation, token: str, *, status: int = 200,
             username: str = "", error: str = "") -> web.Response:
    invitations = request.app[ADMIN].invitations
    link = invitations.link(record, token)
    return render(request, "invite.html", status=status, invalid=False, host=record.host, inviter=record.inviter,
                  reserved=record.username, username=username or record.username, error=error,
                  uri=invitations.uri(record, token), link=link, qr=qr_svg(link), apps=_apps(request),
                  platform=platform_of(request.headers.get("User-Agent", "")),
                  webchat=request.app[CONFIG].http.webchat)


async def invite_form(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    record = await request.app[ADMIN].invitations.open(token)
    if record is None:
        return _gone(request)
    return _landing(request, record, token)


async def invite_signup(request: web.Request) -> web.Response:
    invitations = request.app[ADMIN].invitations
    token = request.match_info["token"]
    record = await invitations.open(token)
    if record is None:
        return _gone(request)
    form = await request.post()
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    if password != str(form.get("password2", "")):
        return _landing(request, record, token, status=400, username=username, error=_("The two passwords differ."))
    try:
        jid = await invitations.accept(token, username, password)
    except ServiceError as exc:
        return _landing(request, record, token, status=400, username=username, error=str(exc))
    return render(request, "invite_done.html", jid=jid, host=record.host, inviter=record.inviter,
                  webchat=request.app[CONFIG].http.webchat)


def setup(app: web.Application) -> None:
    app.router.add_get("/invite/{token}", invite_form)
    app.router.add_post("/invite/{token}", invite_signup)


__all__ = ["APPS", "platform_of", "setup"]
