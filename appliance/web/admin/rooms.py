"""Chat rooms in the console (/admin/rooms) and the API (/api/v1/rooms): list, create, destroy, owners.

Every change goes through the `RoomAdmin` each host's MUC service publishes, so occupants are told at
once; every change is logged on "appliance.admin" with the administrator who made it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from appliance.modules.muc.admin import RoomAdmin, RoomError
from appliance.modules.muc.service import RoomSummary
from appliance.web.admin.api import _body, endpoint
from appliance.web.admin.auth import ConsoleSession
from appliance.web.admin.console import _action, _page, admin_page
from appliance.web.admin.service import AdminError, AdminService, audit
from appliance.web.i18n import _
from appliance.web.keys import ADMIN
from appliance.xmpp.jid import JID, JIDError

if TYPE_CHECKING:
    from appliance.app import Parlour as Server

PAGE = "/admin/rooms"


class RoomDesk:
    """Room administration across every host's chat service, with translated errors and an audit line."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def services(self) -> dict[str, RoomAdmin]:
        """Chat service domain → its RoomAdmin (hosts with group chat turned off have none)."""
        out = {}
        for host in self.server.hosts.values():
            admin = host.services.get(RoomAdmin)
            if admin is not None:
                out[admin.domain] = admin
        return out

    async def rooms(self) -> list[RoomSummary]:
        out: list[RoomSummary] = []
        for admin in self.services().values():
            out += await admin.list()
        return out

    def _room(self, text: str) -> tuple[RoomAdmin, str]:
        """The service and local name of "name@conference.host" (or "name" on the first service)."""
        services = self.services()
        if not services:
            raise AdminError(_("Group chat is turned off on every host of this server."))
        text = text.strip()
        if "@" not in text:
            text = f"{text}@{next(iter(services))}"
        try:
            jid = JID.parse(text)
        except JIDError:
            jid = None
        if jid is None or not jid.local or jid.resource is not None:
            raise AdminError(_("%(text)s is not a room address like lounge@%(service)s.", text=text,
                               service=next(iter(services))))
        admin = services.get(jid.domain)
        if admin is None:
            raise AdminError(_("%(domain)s is not a chat service of this server.", domain=jid.domain))
        return admin, jid.local

    @staticmethod
    def _owners(owners: Iterable[str]) -> list[str]:
        out = []
        for text in owners:
            text = text.strip()
            if not text:
                continue
            try:
                jid = JID.parse(text)
            except JIDError:
                jid = None
            if jid is None or not jid.local or jid.resource is not None:
                raise AdminError(_("%(text)s is not an account address like alice@example.org.", text=text))
            out.append(str(jid))
        if not out:
            raise AdminError(_("A room needs at least one owner."))
        return out

    async def _exists(self, admin: RoomAdmin, name: str) -> bool:
        return any(r.jid == f"{name}@{admin.domain}" for r in await admin.list())

    async def create(self, actor: str, room: str, owners: Iterable[str], *, title: str = "",
                     public: bool = True) -> str:
        admin, name = self._room(room)
        owner_list = self._owners(owners)
        if await self._exists(admin, name):
            raise AdminError(_("The room %(jid)s already exists.", jid=f"{name}@{admin.domain}"))
        try:
            jid = await admin.create(name, owner_list, title=title.strip(), public=public)
        except (RoomError, ValueError) as exc:
            raise AdminError(str(exc)) from None
        audit.info("admin %s: created room %s (owners %s)", actor, jid, ", ".join(owner_list))
        return jid

    async def destroy(self, actor: str, room: str, *, reason: str = "", alternate: str = "") -> str:
        admin, name = self._room(room)
        jid = f"{name}@{admin.domain}"
        alternate = alternate.strip()
        if alternate:
            try:
                JID.parse(alternate)
            except JIDError:
                raise AdminError(_("%(text)s is not a room address like lounge@%(service)s.", text=alternate,
                                   service=admin.domain)) from None
        await self._existing(admin, name)
        try:
            await admin.destroy(name, reason=reason.strip(), alternate=alternate)
        except RoomError as exc:
            raise AdminError(str(exc)) from None
        audit.info("admin %s: destroyed room %s (reason %r, alternate venue %s)", actor, jid, reason.strip(),
                   alternate or "none")
        return jid

    async def set_owners(self, actor: str, room: str, owners: Iterable[str]) -> tuple[str, list[str]]:
        admin, name = self._room(room)
        owner_list = self._owners(owners)
        await self._existing(admin, name)
        try:
            await admin.set_owners(name, owner_list)
        except (RoomError, ValueError) as exc:
            raise AdminError(str(exc)) from None
        jid = f"{name}@{admin.domain}"
        audit.info("admin %s: set the owners of room %s to %s", actor, jid, ", ".join(owner_list))
        return jid, owner_list

    async def _existing(self, admin: RoomAdmin, name: str) -> None:
        if not await self._exists(admin, name):
            raise AdminError(_("There is no room %(jid)s.", jid=f"{name}@{admin.domain}"))


def desk(request: web.Request) -> RoomDesk:
    return RoomDesk(request.app[ADMIN].server)


def _split(text: object) -> list[str]:
    return [part for part in str(text or "").replace("\n", ",").replace(" ", ",").split(",") if part]


# -- console ----------------------------------------------------------------------------------------

@admin_page
async def rooms_page(request: web.Request, session: ConsoleSession) -> web.Response:
    rooms = desk(request)
    return _page(request, session, "admin/rooms.html", rooms=await rooms.rooms(), services=list(rooms.services()))


async def _create(d: RoomDesk, actor: str, form: Any) -> str:
    name = str(form.get("name", "")).strip()
    service = str(form.get("service", "")).strip()
    room = f"{name}@{service}" if service and "@" not in name else name
    jid = await d.create(actor, room, _split(form.get("owners")), title=str(form.get("title", "")),
                         public=form.get("public") == "on")
    return _("Room %(jid)s created.", jid=jid)


async def _destroy(d: RoomDesk, actor: str, form: Any) -> str:
    jid = await d.destroy(actor, str(form.get("room", "")), reason=str(form.get("reason", "")),
                          alternate=str(form.get("alternate", "")))
    return _("Room %(jid)s destroyed.", jid=jid)


async def _owners(d: RoomDesk, actor: str, form: Any) -> str:
    jid, owners = await d.set_owners(actor, str(form.get("room", "")), _split(form.get("owners")))
    return _("Owners of %(jid)s: %(owners)s.", jid=jid, owners=", ".join(owners))


# -- API --------------------------------------------------------------------------------------------

def _json(room: RoomSummary) -> dict[str, Any]:
    return {"jid": room.jid, "name": room.name, "persistent": room.persistent, "public": room.public,
            "members_only": room.members_only, "occupants": room.occupants, "owners": list(room.owners)}


@endpoint
async def list_rooms(request: web.Request, _s: AdminService, _actor: str) -> Any:
    return {"rooms": [_json(r) for r in await desk(request).rooms()]}


@endpoint
async def create_room(request: web.Request, _s: AdminService, actor: str) -> Any:
    body = await _body(request)
    owners = body.get("owners", [actor])
    if not isinstance(owners, list):
        raise AdminError("owners must be a list of account addresses")
    jid = await desk(request).create(actor, str(body.get("jid", "")), [str(o) for o in owners],
                                     title=str(body.get("title", "")), public=bool(body.get("public", True)))
    return web.json_response({"jid": jid}, status=201)


@endpoint
async def destroy_room(request: web.Request, _s: AdminService, actor: str) -> Any:
    body = await _body(request) if request.can_read_body else {}
    reason = str(body.get("reason", request.query.get("reason", "")))
    alternate = str(body.get("alternate", request.query.get("alternate", "")))
    jid = await desk(request).destroy(actor, request.match_info["jid"], reason=reason, alternate=alternate)
    return {"destroyed": jid}


@endpoint
async def set_owners(request: web.Request, _s: AdminService, actor: str) -> Any:
    owners = (await _body(request)).get("owners")
    if not isinstance(owners, list):
        raise AdminError("owners must be a list of account addresses")
    jid, owner_list = await desk(request).set_owners(actor, request.match_info["jid"], [str(o) for o in owners])
    return {"jid": jid, "owners": owner_list}


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get(PAGE, rooms_page)
    r.add_post(f"{PAGE}/create", _action(_create, PAGE, desk))
    r.add_post(f"{PAGE}/destroy", _action(_destroy, PAGE, desk))
    r.add_post(f"{PAGE}/owners", _action(_owners, PAGE, desk))
    r.add_get("/api/v1/rooms", list_rooms)
    r.add_post("/api/v1/rooms", create_room)
    r.add_delete("/api/v1/rooms/{jid}", destroy_room)
    r.add_put("/api/v1/rooms/{jid}/owners", set_owners)


__all__ = ["RoomDesk", "setup"]
