"""Chat rooms as administrators manage them (console, API, CLI): list, create, destroy, change owners.

Every change goes through the chat service of the room's host (the MUC module publishes one per host,
so occupants are told at once; the CLI gets one on the stored rooms); every change is audited.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from appliance.services.errors import Conflict, NotFound, ServiceError, audit
from appliance.util.i18n import _
from appliance.xmpp.jid import JID, JIDError


class RoomView(Protocol):
    """A room as the console and the CLI list it."""

    @property
    def jid(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def persistent(self) -> bool: ...
    @property
    def public(self) -> bool: ...
    @property
    def occupants(self) -> int: ...
    @property
    def owners(self) -> tuple[str, ...]: ...
    @property
    def members_only(self) -> bool: ...
    @property
    def node(self) -> str: ...


class RoomManager(Protocol):
    """Room operations on one chat service domain (modules.muc.admin.RoomAdmin); refusals raise ValueError."""

    @property
    def domain(self) -> str: ...

    async def list(self) -> Sequence[RoomView]: ...

    async def create(self, name: str, owners: list[str], *, title: str = "", public: bool = True) -> str: ...

    async def destroy(self, name: str, *, reason: str = "", alternate: str = "") -> None: ...

    async def set_owners(self, name: str, owners: list[str]) -> None: ...


class RoomDesk:
    """Room administration across every host's chat service, with translated errors and an audit line."""

    def __init__(self, managers: Callable[[], Iterable[RoomManager]]) -> None:
        self.managers = managers  # the chat services of the hosts, live or (CLI) on the stored rooms

    def services(self) -> dict[str, RoomManager]:
        """Chat service domain → its RoomManager (hosts with group chat turned off have none)."""
        return {manager.domain: manager for manager in self.managers()}

    async def rooms(self) -> list[RoomView]:
        out: list[RoomView] = []
        for admin in self.services().values():
            out += await admin.list()
        return out

    def _room(self, text: str) -> tuple[RoomManager, str]:
        """The service and local name of "name@conference.host" (or "name" on the first service)."""
        services = self.services()
        if not services:
            raise ServiceError(_("Group chat is turned off on every host of this server."))
        text = text.strip()
        if "@" not in text:
            text = f"{text}@{next(iter(services))}"
        try:
            jid = JID.parse(text)
        except JIDError:
            jid = None
        if jid is None or not jid.local or jid.resource is not None:
            raise ServiceError(_("%(text)s is not a room address like lounge@%(service)s.", text=text,
                               service=next(iter(services))))
        admin = services.get(jid.domain)
        if admin is None:
            raise ServiceError(_("%(domain)s is not a chat service of this server.", domain=jid.domain))
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
                raise ServiceError(_("%(text)s is not an account address like alice@example.org.", text=text))
            out.append(str(jid))
        if not out:
            raise ServiceError(_("A room needs at least one owner."))
        return out

    async def _exists(self, admin: RoomManager, name: str) -> bool:
        return any(r.jid == f"{name}@{admin.domain}" for r in await admin.list())

    async def create(self, actor: str, room: str, owners: Iterable[str], *, title: str = "",
                     public: bool = True) -> str:
        admin, name = self._room(room)
        owner_list = self._owners(owners)
        if await self._exists(admin, name):
            raise Conflict(_("The room %(jid)s already exists.", jid=f"{name}@{admin.domain}"))
        try:
            jid = await admin.create(name, owner_list, title=title.strip(), public=public)
        except ValueError as exc:
            raise ServiceError(str(exc)) from None
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
                raise ServiceError(_("%(text)s is not a room address like lounge@%(service)s.", text=alternate,
                                   service=admin.domain)) from None
        await self._existing(admin, name)
        try:
            await admin.destroy(name, reason=reason.strip(), alternate=alternate)
        except ValueError as exc:
            raise ServiceError(str(exc)) from None
        audit.info("admin %s: destroyed room %s (reason %r, alternate venue %s)", actor, jid, reason.strip(),
                   alternate or "none")
        return jid

    async def set_owners(self, actor: str, room: str, owners: Iterable[str]) -> tuple[str, list[str]]:
        admin, name = self._room(room)
        owner_list = self._owners(owners)
        await self._existing(admin, name)
        try:
            await admin.set_owners(name, owner_list)
        except ValueError as exc:
            raise ServiceError(str(exc)) from None
        jid = f"{name}@{admin.domain}"
        audit.info("admin %s: set the owners of room %s to %s", actor, jid, ", ".join(owner_list))
        return jid, owner_list

    async def _existing(self, admin: RoomManager, name: str) -> None:
        if not await self._exists(admin, name):
            raise NotFound(_("There is no room %(jid)s.", jid=f"{name}@{admin.domain}"))


__all__ = ["RoomDesk", "RoomManager", "RoomView"]
