"""Announcements to everyone online and the message of the day, each account getting the latter once per
change at its next login (as ejabberd's mod_announce does). The XEP-0133 commands and the console use
the `Announcements` this module provides."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from lxml import etree

from appliance.core import events
from appliance.core.api import Module, ModuleContext
from appliance.core.events import SessionEvent
from appliance.storage.api import HostValueStore, KeyValueStore
from appliance.xmpp.jid import JID

STORE = "motd"
CURRENT = "current"  # host document: the message and its version
SEEN = "seen"  # per account: the version it was sent


@dataclass(frozen=True, slots=True)
class Motd:
    text: str
    version: str  # new with every change, so an edited message reaches everyone once more


def message(host: str, to: JID, text: str) -> etree._Element:
    """A normal message from the server: clients show it like a mail, while many hide headlines."""
    stanza = etree.Element("{jabber:client}message", nsmap={None: "jabber:client"})
    stanza.set("from", host)
    stanza.set("to", str(to))
    stanza.set("type", "normal")
    etree.SubElement(stanza, "{jabber:client}body").text = text
    return stanza


class Announcements:
    """Messages from the server of one host to its users: now to the online ones, or at their next login."""

    def __init__(self, ctx: ModuleContext) -> None:
        self.ctx = ctx
        self.host = ctx.host
        self.documents = ctx.store(HostValueStore)
        self.kv = ctx.store(KeyValueStore)

    def online(self) -> list[JID]:
        """The full JIDs of every session bound on this host."""
        return [s.jid for s in self.ctx.sessions.all() if s.jid.domain == self.host]

    async def announce(self, text: str) -> int:
        """Send `text` to every online session; returns how many."""
        sessions = self.online()
        for full in sessions:
            await self.ctx.route(message(self.host, full, text))
        return len(sessions)

    async def motd(self) -> Motd | None:
        data = await self.documents.get(self.host, STORE, CURRENT)
        if data is None:
            return None
        stored = json.loads(data)
        return Motd(stored["text"], stored["version"])

    async def set_motd(self, text: str, *, send_now: bool) -> int:
        """Store a new message of the day; with `send_now` the online users get it at once (and not again
        at their next login). Returns how many sessions got it now."""
        motd = Motd(text, secrets.token_hex(8))
        document = json.dumps({"text": text, "version": motd.version}).encode()
        await self.documents.put(self.host, STORE, CURRENT, document)
        if not send_now:
            return 0
        sessions = self.online()
        for full in sessions:
            await self._send(full, motd)
        return len(sessions)

    async def delete_motd(self) -> bool:
        return await self.documents.delete(self.host, STORE, CURRENT)

    async def on_initial_presence(self, event: SessionEvent) -> None:
        """An account logging in gets the message of the day unless it got this version already."""
        motd = await self.motd()
        if motd is None:
            return
        user = event.session.jid
        seen = await self.kv.get(self.host, user.local or "", STORE, SEEN)
        if seen != motd.version.encode():
            await self._send(user, motd)

    async def _send(self, full: JID, motd: Motd) -> None:
        await self.kv.put(self.host, full.local or "", STORE, SEEN, motd.version.encode())
        await self.ctx.route(message(self.host, full, motd.text))


class Announce(Module):
    """Provides `Announcements` and delivers the message of the day at login."""

    name = "announce"

    def setup(self, ctx: ModuleContext) -> None:
        self.announcements = Announcements(ctx)
        ctx.provide(Announcements, self.announcements)
        ctx.hook(events.PRESENCE_INITIAL, self.announcements.on_initial_presence)


__all__ = ["Announce", "Announcements", "Motd", "message"]
