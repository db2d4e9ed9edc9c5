"""The admin console's pages (server-rendered; every state change is a POST with a CSRF token)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from appliance.config.spec import Bool
from appliance.services import Services
from appliance.services.errors import ServiceError, audit
from appliance.services.invitations import InvitationTerms
from appliance.services.settings import field_problem, form_value
from appliance.util.i18n import _, lazy
from appliance.web.admin import auth
from appliance.web.admin.auth import ConsoleSession, ConsoleSessions
from appliance.web.keys import ADMIN, CONFIG, CONSOLE_SESSIONS
from appliance.web.pages import render

Page = Callable[[web.Request, ConsoleSession], Awaitable[web.StreamResponse]]

NAV = (("/admin/", lazy("Dashboard")), ("/admin/users", lazy("Users")), ("/admin/invitations", lazy("Invitations")),
       ("/admin/sessions", lazy("Online")), ("/admin/rooms", lazy("Rooms")),
       ("/admin/groups", lazy("Shared groups")), ("/admin/directory", lazy("Directory")),
       ("/admin/federation", lazy("Federation")),
       ("/admin/certificates", lazy("Certificates")), ("/admin/settings", lazy("Settings")),
       ("/admin/backup", lazy("Backup")), ("/admin/logs", lazy("Logs")), ("/admin/tokens", lazy("API tokens")))


def addresses(text: object) -> list[str]:
    """Account addresses as a form field holds them: separated by commas, spaces or new lines."""
    return [part for part in str(text or "").replace("\n", ",").replace(" ", ",").split(",") if part]


def _denied(request: web.Request, reason: str, status: int = 403) -> web.Response:
    return render(request, "admin/denied.html", status=status, reason=reason)


def admin_page(handler: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Only for a logged-in administrator; POSTs also need the session's CSRF token."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        sessions = request.app[CONSOLE_SESSIONS]
        sid = request.cookies.get(auth.COOKIE)
        session = sessions.get(sid)
        if session is None:
            reason = "expired" if sid else ""
            raise web.HTTPSeeOther(f"/admin/login?reason={reason}" if reason else "/admin/login")
        if not request.app[ADMIN].admins.is_admin(session.jid):
            sessions.end(sid)
            return _denied(request, _("%(jid)s is no longer an administrator (it is not listed in "
                                      "server.admins).", jid=session.jid))
        if request.method == "POST":
            form = await request.post()
            if not auth.csrf_ok(session.csrf, form.get("csrf")):
                return _denied(request, _("The form's security token is missing or wrong (CSRF check). "
                                          "Reload the page and try again."))
        return await handler(request, session)

    return wrapper


def _page(request: web.Request, session: ConsoleSession, template: str, **context: Any) -> web.Response:
    flash, session.flash = session.flash, None
    alerts = request.app[ADMIN].certificates.alerts()  # expiring certificates, failed renewal
    return render(request, template, nav=NAV, admin=session.jid, csrf=session.csrf, flash=flash,
                  cert_alerts=alerts, webchat=request.app[CONFIG].http.webchat, **context)


def _back(session: ConsoleSession, to: str, kind: str, text: str) -> web.HTTPSeeOther:
    session.flash = (kind, text)
    return web.HTTPSeeOther(to)


# -- login ------------------------------------------------------------------------------------------

LOGIN_REASONS = {
    "expired": lazy("Your session has expired; please log in again."),
    "logout": lazy("You have logged out."),
}


async def login_form(request: web.Request) -> web.Response:
    token = request.cookies.get(auth.LOGIN_CSRF_COOKIE) or ""
    if len(token) < 20:
        token = secrets.token_urlsafe(24)
    reason = LOGIN_REASONS.get(request.query.get("reason", ""))
    response = render(request, "admin/login.html", csrf=token, notice=_(reason) if reason else None)
    auth.set_cookie(request, response, auth.LOGIN_CSRF_COOKIE, token, 3600)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    sessions: ConsoleSessions = request.app[CONSOLE_SESSIONS]
    service: Services = request.app[ADMIN]
    token = request.cookies.get(auth.LOGIN_CSRF_COOKIE) or ""
    if not auth.csrf_ok(token, form.get("csrf")):
        return _denied(request, _("The form's security token is missing or wrong (CSRF check). "
                                  "Reload the page and try again."))
    account = str(form.get("jid", "")).strip()
    password = str(form.get("password", ""))
    ip = auth.client_ip(request)

    def again(error: str, status: int) -> web.Response:
        return render(request, "admin/login.html", status=status, csrf=token, error=error, jid=account)

    key = auth.account_key(account)
    blocked = sessions.throttle.blocked_for(ip, key)
    if blocked:
        _count_failure(service, "throttled")
        minutes = max(1, round(blocked / 60))
        return again(_("Too many failed logins. Try again in %(minutes)s minutes.", minutes=minutes), 429)
    try:
        jid = await service.accounts.verify(account, password)
    except ServiceError as exc:  # the directory cannot answer: not a wrong password, nothing counted
        return again(str(exc), 503)
    if jid is None:
        sessions.throttle.failed(ip, key)
        _count_failure(service, "password")
        audit.warning("console: failed login as %r from %s", key[:100], ip)
        return again(_("Wrong address or password."), 401)
    sessions.throttle.succeeded(ip, key)
    bare = str(jid)
    if not service.admins.is_admin(bare):
        return again(_("%(jid)s is not an administrator of this server. Administrators are listed in "
                       "server.admins in parlour.toml.", jid=bare), 403)
    sid, _session = sessions.create(bare)
    response = web.HTTPSeeOther("/admin/")
    auth.set_cookie(request, response, auth.COOKIE, sid, sessions.lifetime)
    audit.info("admin %s: logged in to the console from %s", bare, ip)
    raise response


def _count_failure(service: Services, reason: str) -> None:
    """For /metrics: parlour_console_login_failures_total{reason="password"|"throttled"}."""
    service.status.count(f"console_login_failures_{reason}")


@admin_page
async def logout(request: web.Request, session: ConsoleSession) -> web.StreamResponse:
    request.app[CONSOLE_SESSIONS].end(request.cookies.get(auth.COOKIE))
    response = web.HTTPSeeOther("/admin/login?reason=logout")
    response.del_cookie(auth.COOKIE, path=auth.COOKIE_PATH)
    raise response


# -- pages ------------------------------------------------------------------------------------------

@admin_page
async def dashboard(request: web.Request, session: ConsoleSession) -> web.Response:
    services = request.app[ADMIN]
    status = await services.status.status()
    now = time.time()
    week = request.query.get("range") == "week"
    if week:
        points = [(time.strftime("%a %d", time.gmtime(d.start)), d) for d in services.activity.days(7)]
    else:
        points = [(time.strftime("%H:00", time.gmtime(h.start)), h) for h in services.activity.series(24)]
    nodes, cluster_error = [], ""
    try:
        nodes = await services.cluster.nodes()
    except ServiceError as exc:
        cluster_error = str(exc)
    return _page(request, session, "admin/dashboard.html", st=status, now=now, week=week, points=points,
                 cluster=services.cluster.enabled, nodes=nodes, cluster_error=cluster_error)


@admin_page
async def users(request: web.Request, session: ConsoleSession) -> web.Response:
    query = request.query.get("q", "")
    accounts = request.app[ADMIN].accounts
    return _page(request, session, "admin/users.html", users=await accounts.users(query), query=query,
                 host=accounts.default_host())


def _services(request: web.Request) -> Services:
    return request.app[ADMIN]


Confirm = Callable[[Any], str]  # the form -> the question asked before a destructive action


def _action(do: Callable[[Any, str, Any], Awaitable[str]], to: str,
            target: Callable[[web.Request], Any] = _services, *, confirm: Confirm | None = None) -> Callable[..., Any]:
    """A POST that runs one call on `target` (default: the Services) and comes back to `to` with its
    result as a notice. With `confirm`, a page first asks the question and posts the same form again
    with confirmed=yes (no script needed, so it works under the console's strict CSP)."""

    @admin_page
    async def handler(request: web.Request, session: ConsoleSession) -> web.StreamResponse:
        form = await request.post()
        if confirm is not None and form.get("confirmed") != "yes":
            fields = [(k, str(v)) for k, v in form.items() if k not in ("csrf", "confirmed")]
            return _page(request, session, "admin/confirm.html", question=confirm(form), action=request.path,
                         fields=fields, back=to)
        try:
            message = await do(target(request), session.jid, form)
        except ServiceError as exc:
            raise _back(session, to, "error", str(exc)) from None
        raise _back(session, to, "ok", message)

    return handler


async def _create_user(s: Services, actor: str, form: Any) -> str:
    jid = await s.accounts.create(actor, str(form.get("jid", "")), str(form.get("password", "")))
    return _("Account %(jid)s created.", jid=jid)


async def _reset_password(s: Services, actor: str, form: Any) -> str:
    await s.accounts.reset_password(actor, str(form.get("jid", "")), str(form.get("password", "")))
    return _("Password of %(jid)s changed.", jid=form.get("jid", ""))


async def _delete_user(s: Services, actor: str, form: Any) -> str:
    await s.accounts.delete(actor, str(form.get("jid", "")))
    return _("Account %(jid)s deleted.", jid=form.get("jid", ""))


async def _disconnect(s: Services, actor: str, form: Any) -> str:
    count = await s.accounts.disconnect(actor, str(form.get("jid", "")))
    return _("%(jid)s disconnected (%(count)s sessions).", jid=form.get("jid", ""), count=count)


async def _announce(s: Services, actor: str, form: Any) -> str:
    count = await s.announcements.send(actor, str(form.get("announcement", "")))
    return _("Announcement sent to %(count)s online sessions.", count=count)


async def _revoke_invitation(s: Services, actor: str, form: Any) -> str:
    await s.invitations.revoke(actor, str(form.get("id", "")))
    return _("Invitation revoked.")


async def _revoke_token(s: Services, actor: str, form: Any) -> str:
    await s.tokens.revoke(actor, str(form.get("id", "")))
    return _("API token revoked.")


@admin_page
async def invitations(request: web.Request, session: ConsoleSession) -> web.Response:
    return await _invitations_page(request, session, new=None)


async def _invitations_page(request: web.Request, session: ConsoleSession, *,
                            new: dict[str, str] | None) -> web.Response:
    invitations = request.app[ADMIN].invitations
    lifetime = _days(invitations.config().console.invitation_lifetime)
    return _page(request, session, "admin/invitations.html", invitations=await invitations.list(), now=time.time(),
                 enabled=invitations.enabled, new=new, lifetime_days=lifetime)


def _days(seconds: float) -> float:
    return round(seconds / 86400, 2)


def _terms(form: Any, actor: str) -> InvitationTerms:
    """The console form's choices: uses, days, whether the invitee becomes my contact, groups, a name."""
    try:
        uses = int(str(form.get("uses", "1")) or 1)
        days = float(str(form.get("days", "")) or 0) or None
    except ValueError:
        raise ServiceError(_("Uses and days must be numbers.")) from None
    groups = tuple(g for g in str(form.get("groups", "")).split(",") if g.strip())
    return InvitationTerms(uses=uses, lifetime=days * 86400 if days else None, groups=groups,
                           contact=actor if form.get("contact") else "", username=str(form.get("username", "")))


@admin_page
async def create_invitation(request: web.Request, session: ConsoleSession) -> web.Response:
    invitations = request.app[ADMIN].invitations
    form = await request.post()
    try:
        token, record = await invitations.create(session.jid, terms=_terms(form, session.jid))
    except ServiceError as exc:
        raise _back(session, "/admin/invitations", "error", str(exc)) from None
    return await _invitations_page(request, session,
                                   new={"link": invitations.link(record, token), "uri": invitations.uri(record, token)})


@admin_page
async def sessions_page(request: web.Request, session: ConsoleSession) -> web.Response:
    return _page(request, session, "admin/sessions.html", sessions=request.app[ADMIN].accounts.sessions())


@admin_page
async def settings(request: web.Request, session: ConsoleSession) -> web.Response:
    return _page(request, session, "admin/settings.html", settings=request.app[ADMIN].settings.current(), restart=None,
                 problems={})


@admin_page
async def save_settings(request: web.Request, session: ConsoleSession) -> web.Response:
    settings_service = request.app[ADMIN].settings
    form = await request.post()
    values: dict[str, object] = {}
    problems: dict[str, str] = {}
    shown: list[tuple[Any, str]] = []  # what the visitor typed, to show again beside a problem
    for setting, current in settings_service.current():
        raw = form.get(setting.name)
        try:
            value = form_value(setting, raw)  # type: ignore[arg-type]
        except ServiceError:
            value = raw
        problem = field_problem(setting, value)
        if problem is not None:
            problems[setting.name] = problem
        elif _toml_differs(setting, value, current):
            values[setting.name] = value
        typed = setting.key.kind.to_toml(True) if isinstance(setting.key.kind, Bool) and raw else str(raw or "")
        shown.append((setting, typed if setting.name in problems else current))
    if problems:  # nothing is written until every field is right
        response = _page(request, session, "admin/settings.html", settings=shown, restart=None, problems=problems)
        response.set_status(400)
        return response
    try:
        restart = await settings_service.apply(session.jid, values) if values else []
    except ServiceError as exc:
        raise _back(session, "/admin/settings", "error", str(exc)) from None
    text = (_("Saved. A restart is required for: %(keys)s.", keys=", ".join(restart)) if restart
            else _("Saved and applied."))
    raise _back(session, "/admin/settings", "ok", text)


def _toml_differs(setting: Any, value: object, current: str) -> bool:
    from appliance.config.spec import Invalid

    try:
        converted = setting.key.kind.convert(list(value) if isinstance(value, tuple) else value)
    except Invalid:
        return True  # let the loader explain
    return setting.key.kind.to_toml(converted) != current


@admin_page
async def logs(request: web.Request, session: ConsoleSession) -> web.Response:
    query, level = request.query.get("q", ""), request.query.get("level", "")
    lines = request.app[ADMIN].status.logs(query, level)
    return _page(request, session, "admin/logs.html", lines=lines, query=query, level=level)


@admin_page
async def tokens(request: web.Request, session: ConsoleSession) -> web.Response:
    return _page(request, session, "admin/tokens.html", tokens=request.app[ADMIN].tokens.list(), new_token=None)


@admin_page
async def create_token(request: web.Request, session: ConsoleSession) -> web.Response:
    form = await request.post()
    api_tokens = request.app[ADMIN].tokens
    secret, _record = await api_tokens.create(session.jid, str(form.get("label", "")))
    return _page(request, session, "admin/tokens.html", tokens=api_tokens.list(), new_token=secret)


async def to_dashboard(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/admin/")


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin", to_dashboard)
    r.add_get("/admin/", dashboard)
    r.add_get("/admin/login", login_form)
    r.add_post("/admin/login", login)
    r.add_post("/admin/logout", logout)
    r.add_get("/admin/users", users)
    r.add_post("/admin/users/create", _action(_create_user, "/admin/users"))
    r.add_post("/admin/users/password", _action(_reset_password, "/admin/users"))
    r.add_post("/admin/users/delete", _action(_delete_user, "/admin/users", confirm=lambda form: _(
        "Delete the account %(jid)s with its contacts, messages and files? This cannot be undone.",
        jid=form.get("jid", ""))))
    r.add_post("/admin/users/disconnect", _action(_disconnect, "/admin/sessions"))
    r.add_get("/admin/invitations", invitations)
    r.add_post("/admin/invitations", create_invitation)
    r.add_post("/admin/invitations/revoke", _action(_revoke_invitation, "/admin/invitations", confirm=lambda _form: _(
        "Revoke this invitation? Its link stops working at once.")))
    r.add_get("/admin/sessions", sessions_page)
    r.add_post("/admin/announce", _action(_announce, "/admin/sessions"))
    r.add_get("/admin/settings", settings)
    r.add_post("/admin/settings", save_settings)
    r.add_get("/admin/logs", logs)
    r.add_get("/admin/tokens", tokens)
    r.add_post("/admin/tokens", create_token)
    r.add_post("/admin/tokens/revoke", _action(_revoke_token, "/admin/tokens", confirm=lambda _form: _(
        "Revoke this API token? Programs that use it are refused from now on.")))


__all__ = ["setup"]
