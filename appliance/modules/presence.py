"""Presence (RFC 6121 §3-4 and Appendix A): subscriptions with pre-approval, broadcast, probes, directed
presence, and unavailable presence when a session ends."""

from __future__ import annotations

import copy

from lxml import etree

from appliance.core import events
from appliance.core.api import Module, ModuleContext, Session
from appliance.core.events import SessionEvent, StanzaEvent
from appliance.modules.roster import RosterService
from appliance.storage.api import KeyValueStore, RosterItem
from appliance.xmpp.jid import JID
from appliance.xmpp.ns import NS_CLIENT

PRESENCE = f"{{{NS_CLIENT}}}presence"
SUBSCRIPTION_TYPES = frozenset({"subscribe", "subscribed", "unsubscribe", "unsubscribed"})
PENDING = "subscription-requests"  # kv store: inbound subscription requests awaiting an answer


def presence(from_jid: JID | str, to_jid: JID | str, ptype: str | None = None) -> etree._Element:
    el = etree.Element(PRESENCE, nsmap={None: NS_CLIENT})
    el.set("from", str(from_jid))
    el.set("to", str(to_jid))
    if ptype:
        el.set("type", ptype)
    return el


def _priority(stanza: etree._Element) -> int:
    text = stanza.findtext(f"{{{NS_CLIENT}}}priority")
    try:
        value = int(text.strip()) if text else 0
    except ValueError:
        return 0
    return max(-128, min(127, value))


class Presence(Module):
    """Presence subscriptions and broadcast for local accounts."""

    name = "presence"
    depends = ("roster",)
    implements = ()

    def setup(self, ctx: ModuleContext) -> None:
        self.ctx = ctx
        self.roster = ctx.require(RosterService)
        ctx.hook(events.PRESENCE_OUTGOING, self.on_outgoing)
        ctx.hook(events.PRESENCE_BARE, self.on_inbound_bare, events.DELIVER)
        ctx.hook(events.PRESENCE_FULL, self.on_inbound_full, events.DELIVER)
        ctx.hook(events.SESSION_CLOSED, self.on_session_closed)
        ctx.hook(events.ROSTER_REQUESTED, self.on_roster_requested)

    # -- outbound (from a local client) ---------------------------------------------------------

    async def on_outgoing(self, event: StanzaEvent) -> bool:
        stanza, session = event.stanza, event.session
        ptype = stanza.get("type")
        if event.to_jid is None:
            if ptype is None:
                await self._broadcast_available(session, stanza)
            elif ptype == "unavailable":
                await self._broadcast_unavailable(session, stanza)
            return True
        if ptype in SUBSCRIPTION_TYPES:
            await self._outbound_subscription(event.from_jid.bare(), event.to_jid.bare(), ptype, stanza)
            return True
        if ptype in (None, "unavailable") and session is not None:
            await self._track_directed(session, event.to_jid, ptype)
        return False

    async def _broadcast_available(self, session: Session, stanza: etree._Element) -> None:
        user: JID = session.jid
        initial = not session.available
        was_negative = session.priority < 0
        session.available = True
        session.priority = _priority(stanza)
        session.presence = stanza
        items = await self.roster.items(user)
        data = etree.tostring(stanza)
        for item in items:
            if item.subscription in ("from", "both"):
                await self._send_to_contact(stanza, item.contact)
        # RFC 6121 §4.2.2 and §4.4.2: every available resource, the one that sent it included
        self._to_own_resources(session, data, echo=True)
        if initial:
            # RFC 6121 §4.2.2: probe the contacts we are subscribed to; show our other resources.
            for item in items:
                if item.subscription in ("to", "both"):
                    await self.ctx.route(presence(user.bare(), item.contact, "probe"))
            for other in self.ctx.sessions.available(user):
                if other is not session and other.presence is not None:
                    session.send(other.presence)
            await self._deliver_pending_requests(session)
            await self.ctx.fire(events.PRESENCE_INITIAL, SessionEvent(session))
        elif was_negative and session.priority >= 0:
            await self.ctx.fire(events.PRESENCE_NON_NEGATIVE, SessionEvent(session))

    async def _broadcast_unavailable(self, session: Session, stanza: etree._Element) -> None:
        if not session.available and not session.directed:
            return
        user: JID = session.jid
        session.available = False
        session.presence = None
        sent: set[str] = set()
        for item in await self.roster.items(user):
            if item.subscription in ("from", "both"):
                sent.add(item.contact)
                await self._send_to_contact(stanza, item.contact)
        for target in list(session.directed):
            if str(target.bare()) not in sent:
                copy_ = copy.copy(stanza)
                copy_.set("to", str(target))
                await self.ctx.route(copy_)
        session.directed.clear()
        self._to_own_resources(session, etree.tostring(stanza))

    async def _send_to_contact(self, stanza: etree._Element, contact: str) -> None:
        out = copy.copy(stanza)
        out.set("to", contact)
        await self.ctx.route(out)

    def _to_own_resources(self, session: Session, data: bytes, *, echo: bool = False) -> None:
        for other in self.ctx.sessions.available(session.jid):
            if echo or other is not session:
                other.send_bytes(data)

    async def _track_directed(self, session: Session, target: JID, ptype: str | None) -> None:
        user: JID = session.jid
        item = await self.roster.item(user, target)
        if item is not None and item.subscription in ("from", "both"):
            return
        if ptype is None:
            session.directed.add(target)
        else:
            session.directed.discard(target)

    async def _outbound_subscription(self, user: JID, contact: JID, ptype: str, stanza: etree._Element) -> None:
        """The user's side of Appendix A (outbound), then route the request with a bare 'from'."""
        if str(contact) in self.roster.shared(user):
            return  # a shared group subscribes them both ways; only the administrator changes that
        item = await self.roster.item(user, contact) or RosterItem(str(contact))
        sub, ask, approved = item.subscription, item.ask, item.approved
        route = True
        if ptype == "subscribe":
            if sub in ("none", "from"):
                ask = True
        elif ptype == "unsubscribe":
            sub = {"to": "none", "both": "from"}.get(sub, sub)
            ask = False
        elif ptype == "subscribed":
            pending = await self._take_pending(user, contact)
            if sub in ("none", "to") and pending:
                sub = "from" if sub == "none" else "both"
            elif sub in ("none", "to"):
                approved, route = True, False  # RFC 6121 §3.4: pre-approval, nothing is sent yet
            else:
                route = False
        elif ptype == "unsubscribed":
            had_pending = await self._take_pending(user, contact)
            if sub in ("from", "both"):
                sub = "none" if sub == "from" else "to"
            elif not had_pending and not approved:
                route = False
            approved = False
        changed = (sub, ask, approved) != (item.subscription, item.ask, item.approved)
        if changed:
            await self.roster.put(
                user, RosterItem(item.contact, item.name, sub, ask, approved, item.groups)
            )
        if route:
            out = presence(user, contact, ptype)
            for child in stanza:
                out.append(copy.copy(child))
            await self.ctx.route(out)
        if ptype == "subscribed" and route:
            for session in self.ctx.sessions.available(user):
                await self._send_to_contact(session.presence, str(contact))  # type: ignore[arg-type]
        elif ptype == "unsubscribed" and route:
            for session in self.ctx.sessions.available(user):
                await self.ctx.route(presence(session.jid, contact, "unavailable"))

    # -- inbound (to a local account) -------------------------------------------------------------

    async def on_inbound_bare(self, event: StanzaEvent) -> bool:
        stanza = event.stanza
        ptype = stanza.get("type")
        user = event.to_jid.bare()
        if ptype in SUBSCRIPTION_TYPES:
            await self._inbound_subscription(user, event.from_jid.bare(), ptype, stanza)
        elif ptype == "probe":
            await self._answer_probe(user, event.from_jid)
        elif ptype in (None, "unavailable", "error"):  # errors too, as ejabberd and Prosody deliver them
            data = etree.tostring(stanza)
            for session in self.ctx.sessions.available(user):
                session.send_bytes(data)
        return True

    async def on_inbound_full(self, event: StanzaEvent) -> bool:
        stanza = event.stanza
        ptype = stanza.get("type")
        if ptype in SUBSCRIPTION_TYPES or ptype == "probe":
            return await self.on_inbound_bare(event)
        # RFC 6121 §8.5.3.1: delivered to a matching available *or connected* resource.
        session = self.ctx.sessions.get(event.to_jid)
        if session is not None:
            session.send(stanza)
        return True

    async def _inbound_subscription(self, user: JID, contact: JID, ptype: str, stanza: etree._Element) -> None:
        """The contact's side of Appendix A (inbound)."""
        if user == contact:
            return
        item = await self.roster.item(user, contact)
        sub = item.subscription if item else "none"
        if ptype == "subscribe":
            if sub in ("from", "both"):
                await self.ctx.route(presence(user, contact, "subscribed"))
                return
            if item is not None and item.approved:
                new_sub = "from" if sub == "none" else "both"
                await self.roster.put(
                    user, RosterItem(item.contact, item.name, new_sub, item.ask, False, item.groups)
                )
                await self.ctx.route(presence(user, contact, "subscribed"))
                for session in self.ctx.sessions.available(user):
                    await self._send_to_contact(session.presence, str(contact))  # type: ignore[arg-type]
                return
            kv = self.ctx.store(KeyValueStore)
            if await kv.get(user.domain, user.local or "", PENDING, str(contact)) is not None:
                return  # Appendix A.3.1: "Pending In" already, no state change and not delivered again
            await kv.put(user.domain, user.local or "", PENDING, str(contact), etree.tostring(stanza))
            data = etree.tostring(stanza)  # §3.1.3: to all available resources, interested or not
            for session in self.ctx.sessions.available(user):
                session.send_bytes(data)
            return
        if item is None:
            if ptype == "unsubscribe":
                await self._take_pending(user, contact)  # the request was withdrawn
            return
        new_sub, ask = sub, item.ask
        if ptype == "subscribed":
            if not item.ask or sub in ("to", "both"):
                return
            new_sub, ask = ("to" if sub == "none" else "both"), False
        elif ptype == "unsubscribed":
            if sub not in ("to", "both") and not item.ask:
                return
            new_sub, ask = {"to": "none", "both": "from"}.get(sub, sub), False
        elif ptype == "unsubscribe":
            await self._take_pending(user, contact)
            if sub not in ("from", "both"):
                return
            new_sub = "none" if sub == "from" else "to"
            for session in self.ctx.sessions.available(user):
                await self.ctx.route(presence(session.jid, contact, "unavailable"))
        await self.roster.put(user, RosterItem(item.contact, item.name, new_sub, ask, item.approved, item.groups))
        self._deliver_to_interested(user, stanza)

    def _deliver_to_interested(self, user: JID, stanza: etree._Element) -> None:
        data = etree.tostring(stanza)
        for session in self.ctx.sessions.available(user):
            if session.interested:
                session.send_bytes(data)

    async def _answer_probe(self, user: JID, prober: JID) -> None:
        if prober.bare() == user:
            sessions = self.ctx.sessions.available(user)
        else:
            item = await self.roster.item(user, prober)
            if item is None or item.subscription not in ("from", "both"):
                await self.ctx.route(presence(user, prober.bare(), "unsubscribed"))
                return
            sessions = self.ctx.sessions.available(user)
        if not sessions:
            await self.ctx.route(presence(user, prober, "unavailable"))
            return
        for session in sessions:
            if session.presence is not None:
                out = copy.copy(session.presence)
                out.set("from", str(session.jid))
                out.set("to", str(prober))
                await self.ctx.route(out)

    # -- pending inbound requests ---------------------------------------------------------------

    async def _take_pending(self, user: JID, contact: JID) -> bool:
        return await self.ctx.store(KeyValueStore).delete(user.domain, user.local or "", PENDING, str(contact.bare()))

    async def _deliver_pending_requests(self, session: Session) -> None:
        user: JID = session.jid
        pending = await self.ctx.store(KeyValueStore).all(user.domain, user.local or "", PENDING)
        for data in pending.values():
            session.send_bytes(data)

    async def on_roster_requested(self, event: SessionEvent) -> None:
        """Nothing to do now; pending requests go out with the initial presence (RFC 6121 §3.1.3)."""

    # -- session end ----------------------------------------------------------------------------

    async def on_session_closed(self, event: SessionEvent) -> None:
        session = event.session
        if not session.available and not session.directed:
            return
        await self._broadcast_unavailable(session, presence(session.jid, session.jid.bare(), "unavailable"))
