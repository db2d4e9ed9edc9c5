"""/invite/<token>: the signup page an invitation link opens (creates one account, then the link is used)."""

from __future__ import annotations

from aiohttp import web

from appliance.services.errors import ServiceError
from appliance.util.i18n import _
from appliance.web.keys import ADMIN
from appliance.web.pages import render


def _gone(request: web.Request) -> web.Response:
    return render(request, "invite.html", status=404, invalid=True,
                  reason=_("This invitation link is not valid: it has expired, was used already or was revoked. "
                           "Ask an administrator for a new one."))


async def invite_form(request: web.Request) -> web.Response:
    record = request.app[ADMIN].invitations.open(request.match_info["token"])
    if record is None:
        return _gone(request)
    return render(request, "invite.html", host=record.host, invalid=False)


async def invite_signup(request: web.Request) -> web.Response:
    invitations = request.app[ADMIN].invitations
    secret = request.match_info["token"]
    record = invitations.open(secret)
    if record is None:
        return _gone(request)
    form = await request.post()
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    if password != str(form.get("password2", "")):
        return render(request, "invite.html", status=400, host=record.host, invalid=False, username=username,
                      error=_("The two passwords differ."))
    try:
        jid = await invitations.accept(secret, username, password)
    except ServiceError as exc:
        return render(request, "invite.html", status=400, host=record.host, invalid=False, username=username,
                      error=str(exc))
    return render(request, "invite_done.html", jid=jid, host=record.host)


def setup(app: web.Application) -> None:
    app.router.add_get("/invite/{token}", invite_form)
    app.router.add_post("/invite/{token}", invite_signup)


__all__ = ["setup"]
