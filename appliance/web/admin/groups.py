"""Shared-roster groups in the console (/admin/groups) and the API (/api/v1/groups): members of a group see
each other on their rosters with presence.

Thin handlers over `services.shared_groups.SharedGroupDesk`, which does the work and the audit log.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from appliance.services import Services
from appliance.services.errors import ServiceError
from appliance.services.shared_groups import GroupSummary, SharedGroupDesk
from appliance.util.i18n import _
from appliance.web.admin.api import _body, endpoint
from appliance.web.admin.auth import ConsoleSession
from appliance.web.admin.console import _action, _page, addresses, admin_page
from appliance.web.keys import ADMIN

PAGE = "/admin/groups"


def desk(request: web.Request) -> SharedGroupDesk:
    return request.app[ADMIN].groups



def _field(form: Any, name: str) -> str:
    return str(form.get(name, "")).strip()


# -- console ----------------------------------------------------------------------------------------

@admin_page
async def groups_page(request: web.Request, session: ConsoleSession) -> web.Response:
    groups = desk(request)
    return _page(request, session, "admin/groups.html", groups=await groups.groups(), hosts=groups.hosts(),
                 directory_groups=await request.app[ADMIN].directory.groups())


async def _create(d: SharedGroupDesk, actor: str, form: Any) -> str:
    name = await d.create(actor, _field(form, "host"), _field(form, "name"), everyone=form.get("everyone") == "on",
                          directory_group=_field(form, "directory_group"), members=addresses(form.get("members")))
    return _("Group %(name)s created.", name=name)


async def _rename(d: SharedGroupDesk, actor: str, form: Any) -> str:
    name = await d.rename(actor, _field(form, "host"), _field(form, "group"), _field(form, "new_name"))
    return _("Group renamed to %(name)s.", name=name)


async def _delete(d: SharedGroupDesk, actor: str, form: Any) -> str:
    await d.delete(actor, _field(form, "host"), _field(form, "group"))
    return _("Group %(name)s deleted.", name=_field(form, "group"))


async def _add(d: SharedGroupDesk, actor: str, form: Any) -> str:
    members = addresses(form.get("members"))
    for member in members:
        await d.add_member(actor, _field(form, "host"), _field(form, "group"), member)
    return _("Added to %(name)s: %(members)s.", name=_field(form, "group"), members=", ".join(members))


async def _remove(d: SharedGroupDesk, actor: str, form: Any) -> str:
    await d.remove_member(actor, _field(form, "host"), _field(form, "group"), _field(form, "member"))
    return _("Removed %(member)s from %(name)s.", member=_field(form, "member"), name=_field(form, "group"))


# -- API --------------------------------------------------------------------------------------------

def _json(group: GroupSummary) -> dict[str, Any]:
    return {"host": group.host, "name": group.name, "everyone": group.everyone,
            "directory_group": group.directory_group, "members": list(group.members)}


@endpoint
async def list_groups(request: web.Request, _s: Services, _actor: str) -> Any:
    return {"groups": [_json(g) for g in await desk(request).groups(request.query.get("host") or None)]}


@endpoint
async def create_group(request: web.Request, _s: Services, actor: str) -> Any:
    body = await _body(request)
    members = body.get("members", [])
    if not isinstance(members, list):
        raise ServiceError("members must be a list of account addresses")
    name = await desk(request).create(actor, str(body.get("host", "")), str(body.get("name", "")),
                                      everyone=bool(body.get("everyone", False)),
                                      directory_group=str(body.get("directory_group", "")),
                                      members=[str(m) for m in members])
    return web.json_response(_json(await desk(request).group(str(body.get("host", "")), name)), status=201)


@endpoint
async def delete_group(request: web.Request, _s: Services, actor: str) -> Any:
    host, name = request.match_info["host"], request.match_info["name"]
    await desk(request).delete(actor, host, name)
    return {"deleted": name}


@endpoint
async def add_member(request: web.Request, _s: Services, actor: str) -> Any:
    host, name = request.match_info["host"], request.match_info["name"]
    await desk(request).add_member(actor, host, name, str((await _body(request)).get("member", "")))
    return _json(await desk(request).group(host, name))


@endpoint
async def remove_member(request: web.Request, _s: Services, actor: str) -> Any:
    host, name = request.match_info["host"], request.match_info["name"]
    await desk(request).remove_member(actor, host, name, request.match_info["member"])
    return _json(await desk(request).group(host, name))


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get(PAGE, groups_page)
    for action, do in (("create", _create), ("rename", _rename), ("add", _add), ("remove", _remove)):
        r.add_post(f"{PAGE}/{action}", _action(do, PAGE, desk))
    r.add_post(f"{PAGE}/delete", _action(_delete, PAGE, desk, confirm=lambda form: _(
        "Delete the group %(name)s? Its members stop seeing each other through it.", name=form.get("group", ""))))
    r.add_get("/api/v1/groups", list_groups)
    r.add_post("/api/v1/groups", create_group)
    r.add_delete("/api/v1/groups/{host}/{name}", delete_group)
    r.add_post("/api/v1/groups/{host}/{name}/members", add_member)
    r.add_delete("/api/v1/groups/{host}/{name}/members/{member}", remove_member)


__all__ = ["setup"]
