"""The chat service on conference.<host>: routes stanzas to rooms, creates and loads them, keeps them stored."""

from __future__ import annotations

import copy
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from lxml import etree

from appliance.core.events import StanzaEvent
from appliance.modules.muc.config import RoomConfig
from appliance.modules.muc.fanout import Fanout
from appliance.modules.muc.room import MESSAGE, PRESENCE, USER_X, Room, muc_user
from appliance.storage.api import MucAffiliation, MucRoom, MucStore
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.jid import JID, JIDError
from appliance.xmpp.ns import NS_CLIENT, NS_MUC_USER

log = logging.getLogger(__name__)

IQ = f"{{{NS_CLIENT}}}iq"

Archiver = Callable[[Room, str, str, bytes], Awaitable[None]]


class Forwarded(Exception):
    """An IQ to an occupant went on to that occupant; its answer comes later."""


class IqAnswer(Protocol):
    """Answers IQs to the service and its rooms (muc/iq.py)."""

    async def __call__(self, room: Room | None, event: StanzaEvent) -> etree._Element | None: ...

    async def answer_forwarded(self, room: Room, event: StanzaEvent) -> bool: ...


@dataclass(frozen=True, slots=True)
class Limits:
    """Service-wide limits from [modules.muc]."""

    create_rooms: str  # everyone, local or admins
    rooms_per_user: int
    max_history: int
    max_occupants: int


@dataclass(frozen=True, slots=True)
class RoomSummary:
    """A room as the admin console and CLI list it."""

    jid: str
    name: str
    persistent: bool
    public: bool
    occupants: int
    owners: tuple[str, ...]
    members_only: bool = False
    node: str = ""  # in a cluster: the node running the room now ("" nowhere: nobody is in it)


class MucService:
    """Every room of one chat service domain, in memory, with persistent ones mirrored to the store."""

    def __init__(
        self, domain: str, *, store: MucStore, fanout: Fanout, defaults: RoomConfig, limits: Limits,
        host: str, is_admin: Callable[[JID], bool], now: Callable[[], float],
    ) -> None:
        self.domain = domain
        self.store = store
        self.fanout = fanout
        self.defaults = defaults
        self.limits = limits
        self.local_host = host
        self.is_admin = is_admin
        self.now = now
        self.rooms: dict[str, Room] = {}
        self.joined: dict[JID, set[Room]] = {}  # real full JID -> rooms it is in
        self.iq_handler: IqAnswer | None = None  # set by the module: answers IQs to the service and rooms
        self.archiver: Archiver | None = None  # set when a room archive (XEP-0313) is available
        self.history_loader: Callable[[Room], Awaitable[None]] | None = None
        self.clustered = False  # rooms are run by several nodes: those in memory here are not all of them

    # -- RoomHost ------------------------------------------------------------------------------

    def history_ceiling(self) -> int:
        return self.limits.max_history

    def record(self, room: Room) -> MucRoom:
        return MucRoom(self.domain, room.name, room.config.to_json(), room.subject, room.subject_by,
                       room.created_at, tuple(room.affiliations.values()))

    async def persist(self, room: Room) -> None:
        if room.config.persistent and not room.destroyed:
            await self.store.save(self.record(room))

    async def persist_affiliation(self, room: Room, item: MucAffiliation) -> None:
        if room.config.persistent:
            await self.store.set_affiliation(self.domain, room.name, item)

    async def persist_subject(self, room: Room) -> None:
        if room.config.persistent:
            await self.store.set_subject(self.domain, room.name, room.subject, room.subject_by)

    async def archive(self, room: Room, archive_id: str, nick: str, stanza: bytes) -> None:
        if self.archiver is not None:
            await self.archiver(room, archive_id, nick, stanza)

    async def forget(self, room: Room) -> None:
        if self.rooms.get(room.name) is room:
            del self.rooms[room.name]
        await self.store.delete(self.domain, room.name)

    def track(self, real: JID, room: Room, joined: bool) -> None:
        if joined:
            self.joined.setdefault(real, set()).add(room)
        else:
            rooms = self.joined.get(real)
            if rooms is not None:
                rooms.discard(room)
                if not rooms:
                    del self.joined[real]

    # -- loading -------------------------------------------------------------------------------

    async def load(self) -> int:
        """Bring persistent rooms back from the store."""
        for record in await self.store.rooms(self.domain):
            room = self._room_from(record)
            self.rooms[room.name] = room
            if self.history_loader is not None:
                await self.history_loader(room)
        return len(self.rooms)

    async def load_room(self, name: str) -> Room | None:
        """Bring one stored room back (a cluster node taking the room over); None when it is not stored."""
        record = await self.store.room(self.domain, name)
        if record is None:
            return None
        room = self.rooms[name] = self._room_from(record)
        if self.history_loader is not None:
            await self.history_loader(room)
        return room

    def _room_from(self, record: MucRoom) -> Room:
        config = RoomConfig.from_json(record.config, self.defaults)
        room = Room(self, JID.make(record.name, self.domain), config, created_at=record.created_at)
        room.subject, room.subject_by = record.subject, record.subject_by
        room.affiliations = {a.jid: a for a in record.affiliations}
        return room

    # -- routing -------------------------------------------------------------------------------

    async def handle(self, event: StanzaEvent) -> None:
        """Everything addressed to the service domain or a room in it."""
        stanza, to = event.stanza, event.to_jid
        tag = stanza.tag
        if tag == IQ:
            await self._iq(event)
            return
        if to.local is None:
            if tag == MESSAGE and stanza.get("type") not in ("error", "groupchat"):
                raise StanzaError.service_unavailable("Send messages to a room, not to the service")
            return
        room = self.rooms.get(to.local)
        if tag == PRESENCE:
            await self._presence(room, event)
        elif tag == MESSAGE:
            await self._message(room, event)

    async def _presence(self, room: Room | None, event: StanzaEvent) -> None:
        stanza, to, real = event.stanza, event.to_jid, event.from_jid
        ptype = stanza.get("type")
        if ptype == "error":
            if room is not None:
                occ = room.by_real.get(real)
                if occ is not None:
                    await room.remove(occ, (333,))  # its client cannot take room traffic
            return
        if ptype == "unavailable":
            if room is not None:
                await room.leave(real, stanza)
            return
        if ptype is not None:
            return  # subscriptions and probes mean nothing to a room
        if to.resource is None or not to.resource.strip():
            raise StanzaError.jid_malformed("Join a room as room@service/nickname")
        if real.resource is None:
            raise StanzaError.bad_request("Join from a full JID")
        created = False
        if room is None:
            room = await self.create(to.local or "", real)
            created = True
        try:
            await room.join(real, to.resource, stanza, created=created)
        except StanzaError:
            if created:
                await self.forget(room)
            raise

    async def _message(self, room: Room | None, event: StanzaEvent) -> None:
        stanza, to, real = event.stanza, event.to_jid, event.from_jid
        mtype = stanza.get("type", "normal")
        if mtype == "error":
            return
        if room is None:
            raise StanzaError.item_not_found("No such room")
        if to.resource is not None:
            if mtype == "groupchat":
                raise StanzaError.bad_request("Groupchat messages go to the room's bare address")
            await room.private(real, to.resource, stanza)
        elif mtype == "groupchat":
            await room.groupchat(real, stanza)
        elif stanza.find(USER_X) is not None:
            await self.invitation(room, real, stanza)
        else:
            raise StanzaError.not_acceptable("Send groupchat messages to the room")

    async def _iq(self, event: StanzaEvent) -> None:
        stanza = event.stanza
        if stanza.get("type") not in ("get", "set"):
            room = self.rooms.get(event.to_jid.local or "")
            if room is not None and event.to_jid.resource is not None and self.iq_handler is not None:
                await self.iq_handler.answer_forwarded(room, event)
            return
        if len(stanza) != 1:
            raise StanzaError.bad_request("An IQ get or set carries exactly one payload element")
        room = None
        if event.to_jid.local is not None:
            room = self.rooms.get(event.to_jid.local)
            if room is None or (room.locked and room.affiliation(event.from_jid) != "owner"):
                raise StanzaError.item_not_found("No such room")
        assert self.iq_handler is not None
        try:
            result = await self.iq_handler(room, event)
        except Forwarded:
            return
        reply = etree.Element(IQ, nsmap={None: NS_CLIENT})
        reply.set("type", "result")
        reply.set("id", stanza.get("id", ""))
        reply.set("from", str(event.to_jid))
        if result is not None:
            reply.append(result)
        await self.fanout.send_one(reply, event.from_jid)

    # -- creation ------------------------------------------------------------------------------

    def may_create(self, jid: JID) -> bool:
        policy = self.limits.create_rooms
        if self.is_admin(jid):
            return True
        if policy == "admins":
            return False
        return policy == "everyone" or jid.domain == self.local_host

    async def create(self, name: str, creator: JID | None, config: RoomConfig | None = None) -> Room:
        """A new, locked room with `creator` as its owner (§10.1); policy and per-user limits apply."""
        if name in self.rooms:
            raise StanzaError.conflict("The room exists")
        if creator is not None:
            if not self.may_create(creator):
                raise StanzaError.not_allowed("You may not create rooms on this service")
            if not self.is_admin(creator) and self.count_owned(creator.bare()) >= self.limits.rooms_per_user:
                raise StanzaError.resource_constraint("You own as many rooms as this service allows")
        room = Room(self, JID.make(name, self.domain), config or self.defaults, created_at=self.now())
        room.locked = creator is not None
        if creator is not None:
            room.affiliations[str(creator.bare())] = MucAffiliation(str(creator.bare()), "owner")
        self.rooms[name] = room
        await self.persist(room)
        return room

    async def public_rooms(self) -> list[tuple[str, str]]:
        """(JID, name) of the rooms service discovery lists: public and configured. In a cluster the
        stored ones that other nodes run (or nobody does now) are listed too."""
        listed = {r.text: r.config.name or r.name for r in self.rooms.values() if r.config.public and not r.locked}
        if self.clustered:
            for record in await self.store.rooms(self.domain):
                jid = f"{record.name}@{self.domain}"
                config = RoomConfig.from_json(record.config, self.defaults)
                if jid not in listed and record.name not in self.rooms and config.public:
                    listed[jid] = config.name or record.name
        return sorted(listed.items(), key=lambda item: item[0].rpartition("@")[0])  # by room name

    def count_owned(self, bare: JID) -> int:
        key = str(bare)
        return sum(1 for r in self.rooms.values() if (a := r.affiliations.get(key)) and a.affiliation == "owner")

    def unique_name(self) -> str:
        while True:
            name = secrets.token_hex(8)
            if name not in self.rooms:
                return name

    # -- invitations (§7.8.2) --------------------------------------------------------------------

    async def invitation(self, room: Room, real: JID, msg: etree._Element) -> None:
        x = msg.find(USER_X)
        assert x is not None
        for invite in x.findall(f"{{{NS_MUC_USER}}}invite"):
            await self._invite(room, real, invite)
        for decline in x.findall(f"{{{NS_MUC_USER}}}decline"):
            target = _jid(decline.get("to"))
            out = etree.Element(MESSAGE, nsmap={None: NS_CLIENT})
            out.set("from", room.text)
            forwarded = etree.SubElement(muc_user_into(out), f"{{{NS_MUC_USER}}}decline")
            forwarded.set("from", str(real.bare()))
            _copy_reason(decline, forwarded)
            await self.fanout.send_one(out, target)

    async def _invite(self, room: Room, real: JID, invite: etree._Element) -> None:
        occ = room.by_real.get(real)
        if occ is None:
            raise StanzaError.not_acceptable("Only occupants may invite")
        target = _jid(invite.get("to"))
        affiliation = room.affiliation(real)
        privileged = affiliation in ("owner", "admin")
        if not (privileged or room.config.allow_invites or occ.role == "moderator"):
            raise StanzaError.forbidden("Only admins may invite people to this room")
        if room.config.members_only and room.affiliation(target) == "none":
            await room.set_affiliation(str(target.bare()), "member")
        out = etree.Element(MESSAGE, nsmap={None: NS_CLIENT})
        out.set("from", room.text)
        x = muc_user_into(out)
        forwarded = etree.SubElement(x, f"{{{NS_MUC_USER}}}invite")
        shown = str(real.bare()) if room.config.non_anonymous or privileged else f"{room.text}/{occ.nick}"
        forwarded.set("from", shown)
        _copy_reason(invite, forwarded)
        if room.config.password:
            etree.SubElement(x, f"{{{NS_MUC_USER}}}password").text = room.config.password
        body = etree.SubElement(out, f"{{{NS_CLIENT}}}body")
        body.text = f"{real.bare()} invites you to the room {room.text}"
        await self.fanout.send_one(out, target)

    # -- session end ---------------------------------------------------------------------------

    async def session_ended(self, real: JID) -> None:
        for room in list(self.joined.get(real, ())):
            await room.leave(real)

    # -- administration (console and CLI) --------------------------------------------------------

    def summaries(self) -> list[RoomSummary]:
        return [RoomSummary(r.text, r.config.name, r.config.persistent, r.config.public, len(r.occupants),
                            tuple(r.owners()), r.config.members_only)
                for r in sorted(self.rooms.values(), key=lambda r: r.name)]

    async def set_owners(self, room: Room, owners: list[str]) -> None:
        """Make exactly `owners` the room's owners (former owners become admins' peers: no affiliation)."""
        if not owners:
            raise StanzaError.conflict("A room needs at least one owner")
        for jid in owners:
            await room.set_affiliation(jid, "owner")
        for item in room.with_affiliation("owner"):
            if item.jid not in owners:
                await room.set_affiliation(item.jid, "none")

    async def stop(self) -> None:
        for room in list(self.rooms.values()):
            await room.shutdown()


def muc_user_into(parent: etree._Element) -> etree._Element:
    x = muc_user()
    parent.append(x)
    return x


def _copy_reason(source: etree._Element, target: etree._Element) -> None:
    reason = source.find(f"{{{NS_MUC_USER}}}reason")
    if reason is not None:
        target.append(copy.deepcopy(reason))


def _jid(text: str | None) -> JID:
    try:
        return JID.parse(text or "")
    except JIDError:
        raise StanzaError.jid_malformed("The invitation needs a valid 'to' JID") from None
