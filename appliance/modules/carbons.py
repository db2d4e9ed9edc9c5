"""Message Carbons (XEP-0280): copies of a user's chats to the user's other carbons-enabled resources."""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

from lxml import etree

from appliance.core import events
from appliance.core.api import IqRequest, Module, ModuleContext, Xep
from appliance.core.events import Bind2Event, SessionEvent, StanzaEvent
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.jid import JID
from appliance.xmpp.ns import (
    NS_CARBONS,
    NS_CHATSTATES,
    NS_CLIENT,
    NS_CORRECTION,
    NS_FORWARD,
    NS_HINTS,
    NS_MARKERS,
    NS_MUC_USER,
    NS_RECEIPTS,
)

# Payloads that make a message "IM traffic" even without a body (XEP-0280 §6).
_IM_PAYLOADS = (NS_RECEIPTS, NS_MARKERS, NS_CHATSTATES, NS_CORRECTION)
_CARBONS_PREFIX = f"{{{NS_CARBONS}}}"
_NO_COPY = f"{{{NS_HINTS}}}no-copy"
_BODY = f"{{{NS_CLIENT}}}body"


class CarbonsService:
    """Which sessions asked for carbons; Bind2 (XEP-0386) enables them inline through `enable`."""

    __slots__ = ("_enabled",)

    def __init__(self) -> None:
        self._enabled: weakref.WeakSet[Any] = weakref.WeakSet()

    def enable(self, session: Any) -> None:
        self._enabled.add(session)

    def disable(self, session: Any) -> None:
        self._enabled.discard(session)

    def enabled(self, session: Any) -> bool:
        return session in self._enabled

    def any_enabled(self) -> bool:
        """Whether some session has carbons on: while none has, no message is copied (the hot path skips)."""
        # The weak set's own references: WeakSet.__len__ is Python code, and this runs twice per message.
        # A session collected a moment ago may still count here, which only sends one message down the
        # exact path (`enabled`).
        return bool(self._enabled.data)


def eligible(stanza: etree._Element) -> bool:
    """Whether a message is copied at all (XEP-0280 §6, with <private/> and the XEP-0334 no-copy hint)."""
    mtype = stanza.get("type", "normal")
    if mtype != "chat" and mtype != "normal":
        return False
    im = mtype == "chat"  # else a body or an IM payload makes a "normal" message IM traffic
    for child in stanza:  # one pass over the payloads
        tag = child.tag
        if not isinstance(tag, str):
            continue
        if tag.startswith(_CARBONS_PREFIX) or tag == _NO_COPY:
            return False  # <private/>, or already a carbon (never copy copies), or the no-copy hint
        if not im and (tag == _BODY or tag[1 : tag.find("}")] in _IM_PAYLOADS):
            im = True
    return im


def wrap(kind: str, stanza: etree._Element, account: JID, to: JID) -> etree._Element:
    """`<message from=account to=to><sent|received><forwarded>copy</forwarded></...></message>`."""
    outer = etree.Element(f"{{{NS_CLIENT}}}message", nsmap={None: NS_CLIENT})
    outer.set("from", str(account))
    outer.set("to", str(to))
    outer.set("type", stanza.get("type", "normal"))
    holder = etree.SubElement(outer, f"{{{NS_CARBONS}}}{kind}", nsmap={None: NS_CARBONS})
    forwarded = etree.SubElement(holder, f"{{{NS_FORWARD}}}forwarded", nsmap={None: NS_FORWARD})
    forwarded.append(etree.fromstring(etree.tostring(stanza)))
    return outer


class Carbons(Module):
    """Enable/disable per session; sent copies on the way out, received copies just before delivery."""

    name = "carbons"
    depends = ("message",)
    implements = (Xep(280, "1.0.1"),)

    def setup(self, ctx: ModuleContext) -> None:
        self.ctx = ctx
        self.service = CarbonsService()
        ctx.provide(CarbonsService, self.service)
        ctx.iq("set", f"{{{NS_CARBONS}}}enable", self.on_enable)
        ctx.iq("set", f"{{{NS_CARBONS}}}disable", self.on_disable, feature=None)
        # After archiving (so copies carry the stanza-id) and before delivery.
        ctx.hook(events.MESSAGE_OUTGOING, self.on_outgoing, events.NORMAL)
        ctx.hook(events.MESSAGE_BARE, self.on_bare, events.NORMAL)
        ctx.hook(events.MESSAGE_FULL, self.on_full, events.NORMAL)
        ctx.hook(events.SESSION_CLOSED, self.on_closed)
        ctx.hook(events.BIND2_FEATURES, self.on_bind2_features)  # XEP-0386 inline enable
        ctx.hook(events.BIND2_ENABLE, self.on_bind2_enable)

    async def on_enable(self, request: IqRequest) -> None:
        self.service.enable(self._own_session(request))

    async def on_disable(self, request: IqRequest) -> None:
        self.service.disable(self._own_session(request))

    @staticmethod
    def _own_session(request: IqRequest) -> Any:
        if request.session is None or not request.is_self:
            raise StanzaError.not_allowed("Carbons are enabled by a client session for itself")
        return request.session

    @staticmethod
    def on_bind2_features(_event: SessionEvent, features: list[str]) -> list[str]:
        return [*features, NS_CARBONS]

    def on_bind2_enable(self, event: Bind2Event) -> bool:
        if event.element.tag != f"{{{NS_CARBONS}}}enable":
            return False
        self.service.enable(event.session)
        return True

    def on_closed(self, event: SessionEvent) -> None:
        self.service.disable(event.session)

    # -- copies ---------------------------------------------------------------------------------

    # A copy goes to another resource of the same account: for an account with one resource online (the
    # usual case) the hooks stop before looking at the message.

    def _alone(self, jid: JID) -> bool:
        return self.ctx.sessions.count_for(jid) < 2

    def on_outgoing(self, event: StanzaEvent) -> None:
        sender = event.from_jid
        if (
            not self.service.any_enabled() or event.session is None or self._alone(sender) or _to_self(event)
            or not eligible(event.stanza)
        ):
            return
        others = [s for s in self.ctx.sessions.resources(sender) if s.jid != sender]
        self._copy("sent", event.stanza, sender.bare(), others)

    def on_full(self, event: StanzaEvent) -> None:
        if not self.service.any_enabled() or self._alone(event.to_jid):
            return
        target = self.ctx.sessions.get(event.to_jid)
        if target is None:
            self.on_bare(event)  # delivered as if to the bare JID (RFC 6121 §8.5.3.2.1)
        elif self._receivable(event):
            self._copy_received(event, [target])

    def on_bare(self, event: StanzaEvent) -> None:
        if self.service.any_enabled() and not self._alone(event.to_jid) and self._receivable(event):
            user = event.to_jid.bare()
            self._copy_received(event, self.ctx.sessions.message_targets(user, event.stanza.get("type", "normal")))

    def _receivable(self, event: StanzaEvent) -> bool:
        stanza = event.stanza
        if _to_self(event) or not eligible(stanza):
            return False
        # A private message from a MUC occupant to one full JID stays on that resource.
        return not (event.to_jid.resource is not None and stanza.find(f"{{{NS_MUC_USER}}}x") is not None)

    def _copy_received(self, event: StanzaEvent, delivered: list[Any]) -> None:
        if not delivered:
            return  # nobody online gets it now: offline storage (and the archive) take over
        user = event.to_jid.bare()
        others = [s for s in self.ctx.sessions.resources(user) if all(s is not d for d in delivered)]
        self._copy("received", event.stanza, user, others)

    def _copy(self, kind: str, stanza: etree._Element, account: JID, sessions: Iterable[Any]) -> None:
        for session in sessions:
            if self.service.enabled(session):
                session.send(wrap(kind, stanza, account, session.jid))


def _to_self(event: StanzaEvent) -> bool:
    to = event.to_jid
    return to is not None and to.local == event.from_jid.local and to.domain == event.from_jid.domain


__all__ = ["Carbons", "CarbonsService", "eligible"]
