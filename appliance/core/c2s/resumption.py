"""Stream resumption (XEP-0198 §5): finding the session a new connection names, and handing that
connection over to it. The counters and the `<enabled/>`, `<resumed/>` and `<failed/>` answers are
the stream machine's; what needs the registry of resumable sessions is here."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from lxml import etree

from appliance.core.c2s.transport import DETACHED
from appliance.xmpp import sm
from appliance.xmpp.stream import C2SState

if TYPE_CHECKING:
    from appliance.core.c2s.session import ClientSession

log = logging.getLogger("appliance.core.c2s")


def register(session: ClientSession) -> None:
    """Stream management is on: a resumable session can be found by its id from now on."""
    state = session.sm
    if state is not None and state.resumable:
        session.services.resumable.live[state.id] = session


def find_resumable(session: ClientSession, element: etree._Element) -> ClientSession | bytes:
    """The session `<resume previd=... h=.../>` names, with our queue trimmed by the client's
    `h`; or the `<failed/>` to send."""
    from appliance.core.c2s.session import ClientSession  # the two modules need each other

    assert session.host is not None and session.username is not None
    previd = element.get("previd", "")
    bare = f"{session.username}@{session.host.name}"
    old = session.services.resumable.live.get(previd)
    if (
        not isinstance(old, ClientSession) or old.state is not C2SState.READY or old.sm is None
        or old.host is not session.host or old.username != session.username
    ):
        return sm.failed("item-not-found", session.services.resumable.ended_h(previd, bare))
    old.sm.acknowledge(element.get("h"))
    return old


def resume(session: ClientSession, element: etree._Element) -> None:
    """`<resume/>` after SASL (RFC 6120 flow): this connection continues the named session."""
    outcome = find_resumable(session, element)
    if isinstance(outcome, bytes):
        session.machine.resume_failed(outcome)
        return
    session.machine.resumed(element.get("previd", ""), outcome.machine.handled)
    session.flush()  # <resumed/> goes out before the stanzas resent
    adopt(outcome, session)


def adopt(session: ClientSession, newcomer: ClientSession) -> None:
    """Resumption: take over `newcomer`'s connection; close ours if it is still open; resend
    what the client has not acknowledged, then anything client state indication held back."""
    old_transport = session.transport
    transport = newcomer.transport
    session.transport = transport
    transport.session = session
    resend = session.machine.adopt(newcomer.machine)
    newcomer.flush()  # the newcomer's stream ends quietly; its connection is ours now
    if old_transport is not DETACHED:
        old_transport.session = newcomer  # its late connection_lost now reaches a closed session
        old_transport.close()
    session.hibernated_at = 0.0
    session.last_rx = time.monotonic()
    session.ping_sent = 0.0
    log.info("session %s: %s resumed from %s (stream %s)", session.id, session.jid, transport.peer_ip, newcomer.id)
    for data in resend:
        transport.write(data)
    if resend and session.sm is not None:
        session.sm.requested_at = time.monotonic()
    session.release_held()
    session.wake()  # what the client pipelined behind <resume/>


__all__ = ["adopt", "find_resumable", "register", "resume"]
