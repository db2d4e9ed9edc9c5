"""Last Activity (XEP-0012): the server's uptime and when an account was last online."""

from __future__ import annotations

import contextlib
import json
import weakref
from dataclasses import dataclass
from typing import Any

from lxml import etree

from appliance.core import events
from appliance.core.api import IqRequest, Module, ModuleContext, Scope, Xep
from appliance.modules._util import element, sees_presence
from appliance.storage.api import KeyValueStore, UnknownAccount
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.ns import NS_CLIENT, NS_LAST

QUERY = f"{{{NS_LAST}}}query"
STORE = "last"
KEY = "logout"
STATUS = f"{{{NS_CLIENT}}}status"


@dataclass(frozen=True, slots=True)
class LastLogout:
    """When an account's last session ended and the status text of its last unavailable presence."""

    at: float
    status: str = ""

    def encode(self) -> bytes:
        return json.dumps({"at": self.at, "status": self.status}).encode()

    @classmethod
    def decode(cls, data: bytes) -> LastLogout:
        raw = json.loads(data)
        return cls(float(raw["at"]), str(raw.get("status", "")))


class LastActivity(Module):
    """Answers jabber:iq:last for the server (uptime) and for accounts (seconds since logout)."""

    name = "last"
    implements = (Xep(12, "2.0"),)

    ctx: ModuleContext
    started: float

    def setup(self, ctx: ModuleContext) -> None:
        self.ctx = ctx
        self.started = ctx.now()
        # Status text of each session's latest unavailable presence, until the session closes.
        # session -> (status of its unavailable presence, whether that presence already stored the logout)
        self.leaving: weakref.WeakKeyDictionary[Any, tuple[str, bool]] = weakref.WeakKeyDictionary()
        ctx.iq("get", QUERY, self.server_uptime, scope=Scope.SERVER)
        ctx.iq("get", QUERY, self.account_last, scope=Scope.ACCOUNT)
        # Observe before the presence module takes the stanza (it stops the hook chain).
        ctx.hook(events.PRESENCE_OUTGOING, self.on_presence_outgoing, events.TRANSFORM)
        ctx.hook(events.SESSION_CLOSED, self.on_session_closed)

    async def server_uptime(self, request: IqRequest) -> etree._Element:
        return _answer(self.ctx.now() - self.started)

    async def account_last(self, request: IqRequest) -> etree._Element:
        target = request.to_jid
        if not await sees_presence(self.ctx, target, request.from_jid):
            raise StanzaError.forbidden("You are not subscribed to this contact's presence")
        if self.ctx.sessions.available(target):
            return _answer(0)
        assert target.local is not None
        data = await self.ctx.store(KeyValueStore).get(target.domain, target.local, STORE, KEY)
        if data is None:
            raise StanzaError.item_not_found("No last activity is known for this account")
        record = LastLogout.decode(data)
        return _answer(self.ctx.now() - record.at, record.status)

    async def on_presence_outgoing(self, event: events.StanzaEvent) -> None:
        stanza = event.stanza
        if event.session is None or stanza.get("to") is not None or stanza.get("type") != "unavailable":
            return
        status = (stanza.findtext(STATUS) or "").strip()
        jid = event.session.jid
        if any(s is not event.session for s in self.ctx.sessions.available(jid)):
            self.leaving[event.session] = (status, False)
            return
        # The account stops being available now, before its stream closes: a contact that saw the
        # unavailable presence and asks at once gets this logout (XEP-0012 §2), not "unknown".
        self.leaving[event.session] = (status, True)
        with contextlib.suppress(UnknownAccount):
            record = LastLogout(self.ctx.now(), status).encode()
            await self.ctx.store(KeyValueStore).put(jid.domain, jid.local, STORE, KEY, record)

    async def on_session_closed(self, event: events.SessionEvent) -> None:
        session = event.session
        status, stored = self.leaving.pop(session, ("", False))
        jid = session.jid
        if self.ctx.sessions.count_for(jid):
            return  # another resource is still connected: the account has not logged out
        if stored:
            return  # its unavailable presence stored this logout a moment ago
        record = LastLogout(self.ctx.now(), status)
        # The account may have been deleted while its session was open: then there is nothing to keep.
        with contextlib.suppress(UnknownAccount):
            await self.ctx.store(KeyValueStore).put(jid.domain, jid.local, STORE, KEY, record.encode())


def _answer(seconds: float, status: str = "") -> etree._Element:
    query = element(NS_LAST)
    query.set("seconds", str(max(0, int(seconds))))
    if status:
        query.text = status
    return query
