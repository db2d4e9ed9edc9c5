"""Federation in the console (/admin/federation) and the API (/api/v1/federation): which other XMPP
servers users here talk to; block and unblock remote domains; the live connections to other servers
(/api/v1/federation/connections). Thin handlers over
`services.federation.FederationDesk` (validation, parlour.toml, reload and the audit log live there).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from appliance.services import Services
from appliance.services.federation import FederationDesk, FederationView
from appliance.util.i18n import _
from appliance.web.admin.api import _body, endpoint
from appliance.web.admin.auth import ConsoleSession
from appliance.web.admin.console import _action, _page, admin_page
from appliance.web.keys import ADMIN

PAGE = "/admin/federation"


def desk(request: web.Request) -> FederationDesk:
    return request.app[ADMIN].federation


@admin_page
async def federation_page(request: web.Request, session: ConsoleSession) -> web.Response:
    d = desk(request)
    return _page(request, session, "admin/federation.html", federation=d.view(), links=d.links(),
                 since=_since)


def _since(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


async def _block(d: FederationDesk, actor: str, form: Any) -> str:
    domain = await d.block(actor, str(form.get("domain", "")))
    return _("%(domain)s is blocked: nothing goes to it or comes from it.", domain=domain)


async def _unblock(d: FederationDesk, actor: str, form: Any) -> str:
    domain = await d.unblock(actor, str(form.get("domain", "")))
    return _("%(domain)s is no longer blocked.", domain=domain)


def _json(view: FederationView) -> dict[str, Any]:
    return {"enabled": view.enabled, "mode": view.mode, "blocked_domains": list(view.blocked),
            "allowed_domains": list(view.allowed), "silent_drop": view.silent_drop}


@endpoint
async def show(request: web.Request, _s: Services, _actor: str) -> Any:
    return _json(desk(request).view())


@endpoint
async def connections(request: web.Request, _s: Services, _actor: str) -> Any:
    d = desk(request)
    return {"connections": [link.as_json() for link in d.links()], "counters": d.counters()}


@endpoint
async def block(request: web.Request, _s: Services, actor: str) -> Any:
    domain = await desk(request).block(actor, str((await _body(request)).get("domain", "")))
    return web.json_response({"blocked": domain}, status=201)


@endpoint
async def unblock(request: web.Request, _s: Services, actor: str) -> Any:
    return {"unblocked": await desk(request).unblock(actor, request.match_info["domain"])}


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get(PAGE, federation_page)
    r.add_post(f"{PAGE}/block", _action(_block, PAGE, desk))
    r.add_post(f"{PAGE}/unblock", _action(_unblock, PAGE, desk))
    r.add_get("/api/v1/federation", show)
    r.add_get("/api/v1/federation/connections", connections)
    r.add_post("/api/v1/federation/blocked", block)
    r.add_delete("/api/v1/federation/blocked/{domain}", unblock)


__all__ = ["setup"]
