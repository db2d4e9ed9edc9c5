"""The chat services of a cluster node, each put behind the cluster's room leases (appliance/cluster/rooms.py)."""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree

from appliance.cluster.node import ClusterNode
from appliance.cluster.rooms import ClusterRooms, Occupancy, RoomLeases
from appliance.core.server import XmppCore
from appliance.modules.muc import RoomAdmin
from appliance.modules.muc.room import Room
from appliance.modules.muc.service import MucService
from appliance.xmpp.jid import JID


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


def cluster_rooms(node: ClusterNode, core: XmppCore) -> list[ClusterRooms]:
    """Put every host's chat service behind the leases and start looking after them; their rooms loaded
    at start are forgotten (no occupant yet): a room is loaded by the node that takes its lease."""
    out = []
    for host in core.hosts.values():
        admin = host.services.get(RoomAdmin)
        service = admin.live if admin is not None else None
        if service is None:
            continue
        service.rooms.clear()
        handler = core.router.services[service.domain]
        rooms = ClusterRooms(RoomLeases(node.redis, node.name, node.config.expiry), node.outbox, MucRooms(service),
                             handler=handler, present=lambda jid: core.sessions.get(jid) is not None)
        core.router.services[service.domain] = rooms.handle
        rooms.start(core.tasks, node.config.heartbeat)
        node.leaving.append(rooms.stop)
        out.append(rooms)
    return out
