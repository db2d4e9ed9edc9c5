"""Room administration for the admin console and the CLI: list, create, destroy, change owners.

With a running service (`live`) every change goes through it, so occupants are told; without one (the
CLI on a stopped server) the store is changed directly and the server picks it up when it starts.
"""

from __future__ import annotations

import secrets
from dataclasses import replace

from appliance.modules.muc.config import RoomConfig
from appliance.modules.muc.service import MucService, RoomSummary
from appliance.storage.api import MucAffiliation, MucRoom, MucStore
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.jid import JID


class RoomError(ValueError):
    """A room operation that cannot be done, in words for an administrator."""


class RoomAdmin:
    """Administrative room operations on one chat service domain."""

    def __init__(self, store: MucStore, domain: str, defaults: RoomConfig, *, live: MucService | None = None,
                 now: float = 0.0) -> None:
        self.store = store
        self.domain = domain
        self.defaults = defaults
        self.live = live
        self.now = now

    async def list(self) -> list[RoomSummary]:
        if self.live is not None:
            return self.live.summaries()
        out = []
        for r in await self.store.rooms(self.domain):
            config = RoomConfig.from_json(r.config, self.defaults)
            owners = tuple(sorted(a.jid for a in r.affiliations if a.affiliation == "owner"))
            out.append(RoomSummary(f"{r.name}@{self.domain}", config.name, True, config.public, 0, owners,
                                   config.members_only))
        return out

    async def create(self, name: str, owners: list[str], *, title: str = "", public: bool = True) -> str:
        """A persistent, unlocked room owned by `owners`; returns its JID."""
        name = JID.make(name, self.domain).local or ""
        owners = [str(JID.parse(o).bare()) for o in owners]
        if not owners:
            raise RoomError("a room needs at least one owner")
        config = replace(self.defaults, persistent=True, name=title, public=public)
        if self.live is not None:
            try:
                room = await self.live.create(name, None, config)
            except StanzaError as exc:
                raise RoomError(f"{name}@{self.domain} exists") from exc
            for owner in owners:
                await room.set_affiliation(owner, "owner")
            await self.live.persist(room)
        else:
            if await self.store.room(self.domain, name) is not None:
                raise RoomError(f"{name}@{self.domain} exists")
            salted = replace(config, occupant_salt=secrets.token_hex(16))  # occupant ids (XEP-0421)
            await self.store.save(MucRoom(self.domain, name, salted.to_json(), created_at=self.now,
                                          affiliations=tuple(MucAffiliation(o, "owner") for o in owners)))
        return f"{name}@{self.domain}"

    async def destroy(self, name: str, *, reason: str = "", alternate: str = "") -> None:
        if self.live is not None:
            room = self.live.rooms.get(name)
            if room is None:
                raise RoomError(f"no room {name}@{self.domain}")
            await room.destroy(alternate or None, reason or None)
        elif not await self.store.delete(self.domain, name):
            raise RoomError(f"no room {name}@{self.domain}")

    async def set_owners(self, name: str, owners: list[str]) -> None:
        owners = [str(JID.parse(o).bare()) for o in owners]
        if not owners:
            raise RoomError("a room needs at least one owner")
        if self.live is not None:
            room = self.live.rooms.get(name)
            if room is None:
                raise RoomError(f"no room {name}@{self.domain}")
            await self.live.set_owners(room, owners)
            return
        record = await self.store.room(self.domain, name)
        if record is None:
            raise RoomError(f"no room {name}@{self.domain}")
        kept = tuple(a for a in record.affiliations if a.affiliation != "owner" and a.jid not in owners)
        await self.store.save(replace(record, affiliations=kept + tuple(MucAffiliation(o, "owner") for o in owners)))
