"""Message delivery to local accounts (RFC 6121 §8.5) for every message type and address form."""

from __future__ import annotations

from collections.abc import Awaitable

from lxml import etree

from appliance.core import events
from appliance.core.api import Module, ModuleContext
from appliance.core.events import StanzaEvent
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.jid import JID


class Message(Module):
    """Chooses the sessions a message goes to; hands it to offline storage when there are none."""

    name = "message"

    def setup(self, ctx: ModuleContext) -> None:
        self.ctx = ctx
        ctx.hook(events.MESSAGE_BARE, self.on_bare, events.DELIVER)
        ctx.hook(events.MESSAGE_FULL, self.on_full, events.DELIVER)

    # Delivery to an online resource answers at once; only the offline paths (does the account exist,
    # offline storage) need waiting, so the hook bus gets a coroutine for those alone.

    def on_full(self, event: StanzaEvent) -> bool | Awaitable[bool]:
        session = self.ctx.sessions.get(event.to_jid)
        if session is not None:
            session.send(event.stanza)
            return True
        # RFC 6121 §8.5.3.2.1, no resource matches: "chat" is handled as if sent to the bare JID;
        # "normal", "groupchat" and "headline" are ignored or answered with an error (unlike RFC 3921,
        # "normal" is not rerouted); "error" is ignored.
        mtype = event.stanza.get("type", "normal")
        if mtype == "chat":
            return self.on_bare(event)
        if mtype in ("normal", "groupchat"):
            raise StanzaError.service_unavailable()  # the sender expects a reply: tell it nobody is there
        return True  # headline and error: silently ignored

    def on_bare(self, event: StanzaEvent) -> bool | Awaitable[bool]:
        stanza = event.stanza
        mtype = stanza.get("type", "normal")
        if mtype == "error":
            return True
        user = event.to_jid.bare()
        if mtype == "groupchat":
            raise StanzaError.service_unavailable()
        sessions = self.ctx.sessions.message_targets(user, mtype)
        if sessions:
            data = etree.tostring(stanza)
            for session in sessions:
                session.send_bytes(data)
            return True
        return self._nobody_online(event, user, mtype)

    async def _nobody_online(self, event: StanzaEvent, user: JID, mtype: str) -> bool:
        if not self.ctx.sessions.count_for(user) and not await self.ctx.accounts.exists(user):
            raise StanzaError.service_unavailable()
        if mtype == "headline":
            return True
        if await self.ctx.fire(events.MESSAGE_OFFLINE, event):
            return True
        raise StanzaError.service_unavailable()
