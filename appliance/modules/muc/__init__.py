"""Multi-user chat (XEP-0045) as a service on conference.<host>, with direct invitations (XEP-0249),
self-ping (XEP-0410), occupant ids (XEP-0421), moderated retraction (XEP-0425) and a room archive
(XEP-0313)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from appliance.core import events
from appliance.core.api import LABEL, NAME, Bool, Choice, Int, Module, ModuleContext, Xep, option, section
from appliance.core.events import SessionEvent
from appliance.modules.disco import DiscoItems
from appliance.modules.mam import MamOptions
from appliance.modules.muc.admin import RoomAdmin
from appliance.modules.muc.archive import RoomArchive
from appliance.modules.muc.config import RoomConfig
from appliance.modules.muc.fanout import Fanout
from appliance.modules.muc.iq import MucIq
from appliance.modules.muc.service import Limits, MucService
from appliance.storage.api import ArchiveStore, MucStore

__all__ = ["Muc", "RoomAdmin", "defaults_from"]


def defaults_from(options: MucOptions) -> RoomConfig:
    """The configuration new rooms start with, from [modules.muc] (capped by the service limits)."""
    room = options.default_room
    return RoomConfig(
        public=room.public, persistent=room.persistent, members_only=room.members_only,
        moderated=room.moderated, whois=room.whois,
        max_occupants=min(room.max_occupants, options.max_occupants),
        history_length=min(room.history_length, options.max_history),
        change_subject=room.occupants_change_subject, allow_invites=room.allow_invites,
        allow_pm=room.allow_pm, archive=room.archive,
    )


MucWhois = Literal["moderators", "anyone"]
MucAllowPm = Literal["anyone", "participants", "moderators", "none"]
MucCreate = Literal["everyone", "local", "admins"]


@dataclass(frozen=True, slots=True)
class MucRoomDefaults:
    """The configuration new rooms start with; owners change it with the room configuration form."""

    public: bool = option(True, Bool(), "List the room in service discovery.")
    persistent: bool = option(False, Bool(), "Keep the room (and its settings) when the last occupant leaves.")
    members_only: bool = option(False, Bool(), "Only members may enter.")
    moderated: bool = option(False, Bool(),
        "Only occupants with voice may speak; newcomers without an affiliation are visitors.")
    whois: MucWhois = option("moderators", Choice.of(MucWhois),
        "Who sees occupants' real JIDs: moderators (semi-anonymous) or anyone (non-anonymous).")
    max_occupants: int = option(200, Int(1, 100_000),
        "Most occupants at once (capped by max_occupants of the service).")
    history_length: int = option(20, Int(0, 100_000), "Messages replayed to a newcomer (capped by max_history).")
    occupants_change_subject: bool = option(False, Bool(), "Participants, not only moderators, may change the subject.")
    allow_invites: bool = option(False, Bool(), "Participants, not only admins, may invite others.")
    allow_pm: MucAllowPm = option("anyone", Choice.of(MucAllowPm),
        "Who may send private messages inside the room.")
    archive: bool = option(True, Bool(), "Store messages in the room archive (XEP-0313).")


@dataclass(frozen=True, slots=True)
class MucOptions:
    """Multi-user chat (XEP-0045) at <subdomain>.<host>."""

    subdomain: str = option("conference", LABEL, "First label of the chat service's domain.")
    name: str = option("Chatrooms", NAME, "The service's name in service discovery.")
    create_rooms: MucCreate = option("local", Choice.of(MucCreate),
        "Who may create rooms: anybody, accounts of this host, or the server's admins.")
    rooms_per_user: int = option(100, Int(0, 1_000_000), "Most rooms one account may own (admins are exempt).")
    max_history: int = option(100, Int(0, 100_000), "Ceiling for a room's history length.")
    max_occupants: int = option(1000, Int(1, 100_000), "Ceiling for a room's occupant limit.")
    default_room: MucRoomDefaults = section(MucRoomDefaults)

    def service_domain(self, host: str) -> str:
        return f"{self.subdomain}.{host}"


class Muc(Module):
    """The chat service of one host: rooms, their occupants, their configuration and archive."""

    name = "muc"
    options = MucOptions
    depends = ("disco",)
    implements = (
        Xep(45, "1.35.1", note="no voice requests, no room vCards"),
        Xep(249, "1.2", note="direct invitations pass between clients untouched"),
        Xep(410, "1.1.0"),
        Xep(421, "0.1.0"),
        Xep(425, "0.3.0"),
        Xep(424, "0.4.0", status="partial", note="moderator retractions in rooms only"),
    )

    service: MucService

    def setup(self, ctx: ModuleContext[MucOptions]) -> None:
        options = ctx.options
        self.ctx = ctx
        self.domain = options.service_domain(ctx.host)
        limits = Limits(options.create_rooms, options.rooms_per_user, options.max_history, options.max_occupants)
        self.service = MucService(
            self.domain, store=ctx.store(MucStore), fanout=Fanout(ctx.sessions.get, ctx.route),
            defaults=defaults_from(options), limits=limits, host=ctx.host, is_admin=ctx.is_admin, now=ctx.now,
        )
        iq = MucIq(self.service, name=options.name)
        self.service.iq_handler = iq
        paging = ctx.other_options(MamOptions)
        RoomArchive(self.service, iq, ctx.store(ArchiveStore), page_size=paging.page_size,
                    max_page_size=paging.max_page_size).install()
        ctx.serve_domain(self.domain, self.service.handle)
        ctx.hook(events.SESSION_CLOSED, self.on_session_closed)
        items = ctx.optional(DiscoItems)
        if items is not None:
            items.add(self.domain, name=options.name)
        ctx.provide(RoomAdmin, RoomAdmin(ctx.store(MucStore), self.domain, self.service.defaults, live=self.service))

    async def start(self) -> None:
        loaded = await self.service.load()
        if loaded:
            self.ctx.log.info("%s: %d persistent rooms", self.domain, loaded)

    async def stop(self) -> None:
        await self.service.stop()

    async def on_session_closed(self, event: SessionEvent) -> None:
        await self.service.session_ended(event.session.jid)
