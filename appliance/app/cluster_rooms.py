"""The chat services of a cluster node, each put behind the cluster's room leases (appliance/cluster/rooms.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from lxml import etree
from redis.asyncio import Redis

from appliance.cluster.node import ClusterNode
from appliance.cluster.remote import ROOM_ADMIN
from appliance.cluster.rooms import ClusterRooms, Occupancy, RoomLeases, rooms_in_use
from appliance.core.api import Host
from appliance.core.router import LocalService
from appliance.core.server import Unwire, XmppCore
from appliance.modules.muc import RoomAdmin
from appliance.modules.muc.admin import RoomError
from appliance.modules.muc.room import Room
from appliance.modules.muc.service import MucService, RoomSummary
from appliance.xmpp.jid import JID

log = logging.getLogger(__name__)


class MucRooms:
    """A chat service's rooms as the cluster sees them (`cluster.rooms.RoomHost`)."""

    def __init__(self, service: MucService) -> None:
        self.service = service
        self.domain = service.domain

    def loaded(self, name: str) -> bool:
        return name in self.service.rooms

    async def load(self, name: str) -> None:
        await self.service.load_room(name)

    def drop(self, name: str) -> Room | None:
        room = self.service.rooms.pop(name, None)
        if room is None:
            return None
        room.destroyed = True  # a handler still running for it stores nothing more: the room is not ours
        for real in list(room.by_real):
            self.service.track(real, room, False)
        return room

    def resume(self, room: object) -> None:
        assert isinstance(room, Room)
        room.destroyed = False
        self.service.rooms[room.name] = room
        for real in room.by_real:
            self.service.track(real, room, True)

    def occupants(self, name: str) -> Occupancy:
        room = self.service.rooms[name]
        return {str(real): (occ.nick, occ.presence) for real, occ in room.by_real.items()}

    async def restore(self, name: str, occupants: list[tuple[JID, str, etree._Element | None]]) -> None:
        room = self.service.rooms.get(name)
        if room is None:  # a temporary room: only its occupants were kept
            room = await self.service.create(name, None)
        for real, nick, presence in occupants:
            room.restore(real, nick, presence)

    async def remove_gone(self, name: str, present: Callable[[JID], bool]) -> None:
        room = self.service.rooms[name]
        for real in [r for r in room.by_real if not present(r)]:
            await room.leave(real)

    def idle(self, name: str) -> bool:
        room = self.service.rooms.get(name)
        return room is None or (room.empty() and not room.locked)


class ClusterRoomAdmin(RoomAdmin):
    """The console's, the API's and the ad-hoc commands' room administration on a cluster node: the
    list shows every room with the node running it; a change is made by the node running the room
    (this one, after taking a free lease; else it is sent to that node)."""

    def __init__(self, live: RoomAdmin, rooms: ClusterRooms, redis: Redis) -> None:
        super().__init__(live.store, live.domain, live.defaults, live=live.live, now=live.now)
        self.rooms = rooms
        self.redis = redis
        self.stored = RoomAdmin(live.store, live.domain, live.defaults)  # the rooms as the database has them

    async def list(self) -> list[RoomSummary]:
        here = self.rooms.leases.node
        in_use = {r.jid: r for r in await rooms_in_use(self.redis) if r.jid.endswith("@" + self.domain)}
        out = {r.jid: replace(r, node=here) for r in await super().list()}  # the rooms this node runs
        for room in await self.stored.list():
            if room.jid not in out:
                use = in_use.get(room.jid)
                out[room.jid] = replace(room, node=use.node, occupants=use.occupants) if use else room
        for jid, use in in_use.items():
            if jid not in out:  # a temporary room run by another node: only where and how many
                out[jid] = RoomSummary(jid, "", False, False, use.occupants, (), node=use.node)
        return [out[jid] for jid in sorted(out)]

    async def create(self, name: str, owners: list[str], *, title: str = "", public: bool = True) -> str:
        name = JID.make(name, self.domain).local or ""
        made: list[str] = []

        async def create() -> None:
            made.append(await super(ClusterRoomAdmin, self).create(name, owners, title=title, public=public))

        if await self.rooms.run_here(name, create) != self.rooms.leases.node:
            raise RoomError(f"{name}@{self.domain} exists")
        return made[0]

    async def destroy(self, name: str, *, reason: str = "", alternate: str = "") -> None:
        await self._change(name, {"op": "destroy", "reason": reason, "alternate": alternate})

    async def set_owners(self, name: str, owners: list[str]) -> None:
        await self._change(name, {"op": "owners", "owners": owners})

    async def _change(self, name: str, change: dict[str, Any]) -> None:
        node = await self.rooms.run_here(name, lambda: self._apply(name, change))
        if node != self.rooms.leases.node:
            self.rooms.post_admin(node, name, json.dumps(change).encode())

    async def _apply(self, name: str, change: dict[str, Any]) -> None:
        if change["op"] == "destroy":
            await super().destroy(name, reason=change["reason"], alternate=change["alternate"])
        else:
            await super().set_owners(name, list(change["owners"]))

    async def on_change(self, room: JID, data: bytes) -> None:
        """A change another node's administrator made to a room this node ran (when it sent it)."""
        try:
            await self._change(room.local or "", json.loads(data))
        except RoomError as exc:
            log.warning("cluster: a change to room %s from another node's console failed: %s", room, exc)


def cluster_rooms(node: ClusterNode, core: XmppCore) -> None:
    """Put every host's chat service behind the leases and look after them, now and after every reload of
    the modules (the old services hand their rooms on first, as at a clean stop). The rooms a service
    loaded at its start are forgotten (no occupant yet): a room is loaded by the node that takes its lease."""
    admins: dict[str, ClusterRoomAdmin] = {}

    def wire() -> Unwire:
        admins.clear()
        wired: list[tuple[Host, str, LocalService, RoomAdmin, ClusterRooms]] = []
        for host in core.hosts.values():
            admin = host.services.get(RoomAdmin)
            service = admin.live if admin is not None else None
            if admin is None or service is None:
                continue
            service.rooms.clear()
            service.clustered = True
            handler = core.router.services[service.domain]
            rooms = ClusterRooms(RoomLeases(node.redis, node.name, node.config.expiry), node.outbox,
                                 MucRooms(service), handler=handler,
                                 present=lambda jid: core.sessions.get(jid) is not None, changes=node.changes)
            core.router.services[service.domain] = rooms.handle
            host.services[RoomAdmin] = admins[service.domain] = ClusterRoomAdmin(admin, rooms, node.redis)
            rooms.start(core.tasks, node.config.heartbeat)
            node.leaving.append(rooms.stop)
            node.registry.node_gone.append(rooms.node_gone)
            wired.append((host, service.domain, handler, admin, rooms))

        async def unwire() -> None:
            # Hand the rooms on, then give the module back what it registered, so that it undoes it.
            for host, domain, handler, admin, rooms in wired:
                node.leaving.remove(rooms.stop)
                node.registry.node_gone.remove(rooms.node_gone)
                await rooms.stop()
                core.router.services[domain] = handler
                host.services[RoomAdmin] = admin

        return unwire

    async def changed(room: JID, data: bytes) -> None:
        admin = admins.get(room.domain)
        if admin is not None:
            await admin.on_change(room, data)

    node.delivery.handlers[ROOM_ADMIN] = changed
    core.wire_modules(wire)
