"""Stream Management (XEP-0198) at server level: resumable sessions by id, and what happens to the
stanzas a session never got acknowledged when it ends for good.

The per-stream counters live in `xmpp/sm.py`; `core/c2s.py` drives enabling, acknowledgements,
hibernation and resumption. This file holds what outlives a connection.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lxml import etree

from appliance.core import events
from appliance.core.events import StanzaEvent
from appliance.xmpp import sm
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.jid import JID, JIDError
from appliance.xmpp.ns import NS_CLIENT

if TYPE_CHECKING:
    from appliance.core.api import Host
    from appliance.core.router import Router
    from appliance.core.sessions import Session, SessionDirectory

log = logging.getLogger(__name__)

IQ = f"{{{NS_CLIENT}}}iq"
MAX_FORGOTTEN = 10_000  # ended sessions whose final 'h' is still reported in <failed/>


@dataclass(slots=True)
class SmRegistry:
    """Resumable sessions by stream-management id, and the final counts of recently ended ones."""

    live: dict[str, Session] = field(default_factory=dict)
    ended: OrderedDict[str, tuple[str, int, float]] = field(default_factory=OrderedDict)  # id -> (bare, h, when)

    def ended_h(self, sm_id: str, bare: str) -> int | None:
        """The inbound count of an ended session of this account, for `<failed h=.../>`."""
        entry = self.ended.get(sm_id)
        return entry[1] if entry is not None and entry[0] == bare else None

    def forget(self, sm_id: str, bare: str, handled: int) -> None:
        self.live.pop(sm_id, None)
        self.ended[sm_id] = (bare, handled, time.monotonic())
        while len(self.ended) > MAX_FORGOTTEN:
            self.ended.popitem(last=False)

    def prune(self, now: float, keep: float) -> None:
        while self.ended:
            sm_id, (_bare, _h, when) = next(iter(self.ended.items()))
            if now - when <= keep:
                break
            del self.ended[sm_id]


async def reroute_unacked(
    *, host: Host, router: Router, sessions: SessionDirectory, owner: Session, stanzas: list[bytes]
) -> None:
    """No loss: give each unacknowledged message of an ended session another way to its user.

    In order: a handler of `events.SM_UNDELIVERED` may claim it (e.g. one that knows which other
    resources already have a copy); else it goes to the account's other available resources with the
    highest non-negative priority; else to offline storage through `events.MESSAGE_OFFLINE`, which
    awaits the durable write. IQ requests are answered with an error so the sender does not wait.
    Archiving happened when the message was first routed.
    """
    bare = owner.jid.bare()
    for data in stanzas:
        try:
            stanza = etree.fromstring(data)
        except etree.XMLSyntaxError:
            log.error("session %s: an unacknowledged stanza does not parse; dropped", owner.jid)
            continue
        if stanza.tag == IQ and stanza.get("type") in ("get", "set"):
            await router.bounce(stanza, StanzaError.recipient_unavailable())
            continue
        if not sm.reroutable(stanza):
            continue
        try:
            from_jid = JID.parse(stanza.get("from", ""))
        except JIDError:
            from_jid = host.jid
        if await host.hooks.fire(events.SM_UNDELIVERED, StanzaEvent(stanza, from_jid, owner.jid, None)):
            continue
        event = StanzaEvent(stanza, from_jid, bare, None)
        others = sessions.message_targets(bare, exclude=owner)
        if others:
            for other in others:
                other.send_bytes(data)
            continue
        if not await host.hooks.fire(events.MESSAGE_OFFLINE, event):
            log.warning("%s: an unacknowledged message could not be stored offline", bare)
