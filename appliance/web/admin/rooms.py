"""Chat rooms in the console (/admin/rooms) and the API (/api/v1/rooms): list, create, destroy, owners.

Thin handlers over `services.rooms.RoomDesk`, which does the work and the audit log.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from appliance.services import Services
from appliance.services.errors import ServiceError
from appliance.services.rooms import RoomDesk, RoomView
from appliance.util.i18n import _
from appliance.web.admin.api import _body, endpoint
from appliance.web.admin.auth import ConsoleSession
from appliance.web.admin.console import _action, _page, addresses, admin_page
from appliance.web.keys import ADMIN

PAGE = "/admin/rooms"


def desk(request: web.Request) -> RoomDesk:
    return request.app[ADMIN].rooms



# -- console ----------------------------------------------------------------------------------------

@admin_page
async def rooms_page(request: web.Request, session: ConsoleSession) -> web.Response:
    rooms = desk(request)
    return _page(request, session, "admin/rooms.html", rooms=await rooms.rooms(), services=list(rooms.services()))


async def _create(d: RoomDesk, actor: str, form: Any) -> str:
    name = str(form.get("name", "")).strip()
    service = str(form.get("service", "")).strip()
    room = f"{name}@{service}" if service and "@" not in name else name
    jid = await d.create(actor, room, addresses(form.get("owners")), title=str(form.get("title", "")),
                         public=form.get("public") == "on")
    return _("Room %(jid)s created.", jid=jid)


async def _destroy(d: RoomDesk, actor: str, form: Any) -> str:
    jid = await d.destroy(actor, str(form.get("room", "")), reason=str(form.get("reason", "")),
                          alternate=str(form.get("alternate", "")))
    return _("Room %(jid)s destroyed.", jid=jid)


async def _owners(d: RoomDesk, actor: str, form: Any) -> str:
    jid, owners = await d.set_owners(actor, str(form.get("room", "")), addresses(form.get("owners")))
    return _("Owners of %(jid)s: %(owners)s.", jid=jid, owners=", ".join(owners))


# -- API --------------------------------------------------------------------------------------------

def _json(room: RoomView) -> dict[str, Any]:
    out = {"jid": room.jid, "name": room.name, "persistent": room.persistent, "public": room.public,
           "members_only": room.members_only, "occupants": room.occupants, "owners": list(room.owners)}
    if room.node:  # a cluster: the node that runs the room now
        out["node"] = room.node
    return out


@endpoint
async def list_rooms(request: web.Request, _s: Services, _actor: str) -> Any:
    return {"rooms": [_json(r) for r in await desk(request).rooms()]}


@endpoint
async def create_room(request: web.Request, _s: Services, actor: str) -> Any:
    body = await _body(request)
    owners = body.get("owners", [actor])
    if not isinstance(owners, list):
        raise ServiceError("owners must be a list of account addresses")
    jid = await desk(request).create(actor, str(body.get("jid", "")), [str(o) for o in owners],
                                     title=str(body.get("title", "")), public=bool(body.get("public", True)))
    return web.json_response({"jid": jid}, status=201)


@endpoint
async def destroy_room(request: web.Request, _s: Services, actor: str) -> Any:
    body = await _body(request) if request.can_read_body else {}
    reason = str(body.get("reason", request.query.get("reason", "")))
    alternate = str(body.get("alternate", request.query.get("alternate", "")))
    jid = await desk(request).destroy(actor, request.match_info["jid"], reason=reason, alternate=alternate)
    return {"destroyed": jid}


@endpoint
async def set_owners(request: web.Request, _s: Services, actor: str) -> Any:
    owners = (await _body(request)).get("owners")
    if not isinstance(owners, list):
        raise ServiceError("owners must be a list of account addresses")
    jid, owner_list = await desk(request).set_owners(actor, request.match_info["jid"], [str(o) for o in owners])
    return {"jid": jid, "owners": owner_list}


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get(PAGE, rooms_page)
    r.add_post(f"{PAGE}/create", _action(_create, PAGE, desk))
    r.add_post(f"{PAGE}/destroy", _action(_destroy, PAGE, desk, confirm=lambda form: _(
        "Destroy the room %(jid)s? Everyone in it is sent out, and its history is deleted.",
        jid=form.get("room", ""))))
    r.add_post(f"{PAGE}/owners", _action(_owners, PAGE, desk))
    r.add_get("/api/v1/rooms", list_rooms)
    r.add_post("/api/v1/rooms", create_room)
    r.add_delete("/api/v1/rooms/{jid}", destroy_room)
    r.add_put("/api/v1/rooms/{jid}/owners", set_owners)


__all__ = ["setup"]
