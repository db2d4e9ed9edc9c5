"""The company directory in the console (/admin/directory) and the API (/api/v1/directory): whether it
answers, how many users it has, the last error, and a live test that finds one user."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from appliance.services import Services
from appliance.services.directory import CheckResult
from appliance.web.admin.api import _body, endpoint
from appliance.web.admin.auth import ConsoleSession
from appliance.web.admin.console import _page, admin_page
from appliance.web.keys import ADMIN

PAGE = "/admin/directory"


def _render(request: web.Request, session: ConsoleSession, result: CheckResult | None = None,
            username: str = "") -> web.Response:
    return _page(request, session, "admin/directory.html", d=request.app[ADMIN].directory.status(), result=result,
                 username=username)


@admin_page
async def directory_page(request: web.Request, session: ConsoleSession) -> web.Response:
    return _render(request, session)


@admin_page
async def check(request: web.Request, session: ConsoleSession) -> web.Response:
    """Run the test now and show its steps on the page (the result is too long for a notice)."""
    username = str((await request.post()).get("username", "")).strip()
    result = await request.app[ADMIN].directory.check(session.jid, username)
    return _render(request, session, result, username)


def _result_json(result: CheckResult) -> dict[str, Any]:
    user = result.user
    return {"ok": result.ok, "steps": list(result.steps), "error": result.error, "users_found": result.users_found,
            "user": None if user is None else {"username": user.username, "dn": user.dn, "name": user.full_name,
                                               "email": user.email}}


@endpoint
async def status_json(request: web.Request, services: Services, _actor: str) -> Any:
    return dataclasses.asdict(services.directory.status())


@endpoint
async def check_json(request: web.Request, services: Services, actor: str) -> Any:
    body = await _body(request) if request.can_read_body else {}
    return _result_json(await services.directory.check(actor, str(body.get("username", ""))))


def setup(app: web.Application) -> None:
    app.router.add_get(PAGE, directory_page)
    app.router.add_post(f"{PAGE}/check", check)
    app.router.add_get("/api/v1/directory", status_json)
    app.router.add_post("/api/v1/directory/check", check_json)


__all__ = ["setup"]
