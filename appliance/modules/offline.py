"""Offline messages (XEP-0160): stored durably in SQLite, delivered with the next initial presence."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from appliance.core import events
from appliance.core.api import Int, Module, ModuleContext, Xep, option
from appliance.core.events import PushEvent, SessionEvent, StanzaEvent
from appliance.storage.api import OfflineStore
from appliance.util.timestamps import format_datetime
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.ns import NS_CHATSTATES, NS_DELAY

NS_HINTS = "urn:xmpp:hints"
NS_MSGOFFLINE = "msgoffline"


def worth_storing(stanza: etree._Element) -> bool:
    """Store messages with content; skip bare chat states and messages hinted no-store (XEP-0334)."""
    if stanza.find(f"{{{NS_HINTS}}}no-store") is not None:
        return False
    if stanza.find(f"{{{NS_HINTS}}}store") is not None:
        return True
    return any(not str(child.tag).startswith(f"{{{NS_CHATSTATES}}}") for child in stanza)


@dataclass(frozen=True, slots=True)
class OfflineOptions:
    """Offline message storage (XEP-0160)."""

    max_messages: int = option(1000, Int(0, 1_000_000), "Messages kept per account while it is offline; 0 keeps none.")


class Offline(Module):
    """Keeps messages for users with no available resource, within a per-user limit."""

    name = "offline"
    options = OfflineOptions
    depends = ("message",)
    implements = (Xep(160, "1.0.1"), Xep(203, "2.0", note="delay stamp on stored messages"))

    def setup(self, ctx: ModuleContext[OfflineOptions]) -> None:
        self.ctx = ctx
        self.limit = ctx.options.max_messages
        ctx.feature(NS_MSGOFFLINE)
        ctx.hook(events.MESSAGE_OFFLINE, self.on_store)
        ctx.hook(events.PRESENCE_INITIAL, self.on_available)
        # XEP-0160 §2: "When the recipient next sends non-negative available presence" - initial or later.
        ctx.hook(events.PRESENCE_NON_NEGATIVE, self.on_available)

    async def on_store(self, event: StanzaEvent) -> bool:
        stanza = event.stanza
        if not worth_storing(stanza):
            return True  # accepted and dropped, like a chat state to an offline user
        user = event.to_jid.bare()
        stamped = _with_delay(stanza, self.ctx.host, self.ctx.now())
        # Awaiting the commit before returning is what makes "acknowledged" mean "durable".
        offline = self.ctx.store(OfflineStore)
        if not await offline.push(user.domain, user.local or "", etree.tostring(stamped), self.limit):
            raise StanzaError.service_unavailable("The recipient's offline storage is full")
        await self.ctx.fire(events.PUSH_NEEDED, PushEvent(user, stanza))
        return True

    async def on_available(self, event: SessionEvent) -> None:
        session = event.session
        if session.priority < 0:
            return
        user = session.jid
        stored = await self.ctx.store(OfflineStore).fetch(user.domain, user.local or "")
        if not stored:
            return
        for message in stored:
            session.send_bytes(message.stanza)
        await self.ctx.store(OfflineStore).delete(user.domain, user.local or "", [m.id for m in stored])


def _with_delay(stanza: etree._Element, host: str, now: float) -> etree._Element:
    if stanza.find(f"{{{NS_DELAY}}}delay") is not None:
        return stanza
    delay = etree.SubElement(stanza, f"{{{NS_DELAY}}}delay", nsmap={None: NS_DELAY})
    delay.set("from", host)
    delay.set("stamp", format_datetime(now))
    return stanza
