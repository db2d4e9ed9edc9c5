"""Stream management on a bound stream (XEP-0198): enabling, acknowledgements, and resumption, where a
new connection takes over a session that outlived its old one."""

from __future__ import annotations

import logging
import secrets
import time
from typing import TYPE_CHECKING

from lxml import etree

from appliance.core.c2s.services import CSI_MODULE, SM_MODULE
from appliance.core.c2s.transport import DETACHED
from appliance.xmpp import sm
from appliance.xmpp.errors import StreamError
from appliance.xmpp.stream import C2SState

if TYPE_CHECKING:
    from appliance.core.c2s.session import ClientSession

log = logging.getLogger("appliance.core.c2s")


def stream_element(session: ClientSession, element: etree._Element) -> None:
    """A non-stanza element on a bound stream: <enable/>, <r/>, <a/>, <resume/>, <active/>, <inactive/>."""
    tag = element.tag
    state = session._sm
    if tag == sm.REQUEST:
        if state is None:
            raise StreamError.unsupported_stanza_type("Stream management is not enabled")
        session.transport.write(sm.ack(state.handled))
    elif tag == sm.ACK:
        if state is None:
            raise StreamError.unsupported_stanza_type("Stream management is not enabled")
        state.acknowledge(element.get("h"))
    elif tag == sm.ENABLE:
        if state is not None or not session.module_on(SM_MODULE):
            session.transport.write(sm.failed("unexpected-request" if state else "feature-not-implemented"))
        else:
            session.transport.write(enable(session, element))
    elif tag == sm.RESUME:
        session.transport.write(sm.failed("unexpected-request"))  # this stream is bound already
    elif session.module_on(CSI_MODULE):
        session.set_client_state(tag)
    else:
        raise StreamError.unsupported_stanza_type("Client state indication is not offered here")


def enable(session: ClientSession, element: etree._Element) -> bytes:
    """Start counting; with resume='true' (and resumption configured) the session may outlive
    its connection. Returns the `<enabled/>` to send."""
    options = session.module_options(SM_MODULE)
    resumable = element.get("resume") in ("true", "1") and options.resume_timeout > 0
    state = session._sm = sm.StreamManagement(
        secrets.token_urlsafe(18), resumable=resumable, max_queue=options.max_queue
    )
    if not resumable:
        return sm.enabled(None, max_seconds=None)
    session.services.resumable.live[state.id] = session
    timeout = int(options.resume_timeout)
    wanted = element.get("max", "")
    if wanted.isdigit() and 0 < int(wanted) < timeout:
        timeout = int(wanted)
    return sm.enabled(state.id, max_seconds=timeout)


def handled(session: ClientSession) -> int:
    """Stanzas handled from the client so far (the `h` we report), 0 without stream management."""
    return session._sm.handled if session._sm is not None else 0


def find_resumable(session: ClientSession, element: etree._Element) -> ClientSession | bytes:
    """The session `<resume previd=... h=.../>` names, with our queue trimmed by the client's
    `h`; or the `<failed/>` to send."""
    from appliance.core.c2s.session import ClientSession  # the two modules need each other

    assert session.host is not None and session.username is not None
    previd = element.get("previd", "")
    bare = f"{session.username}@{session.host.name}"
    old = session.services.resumable.live.get(previd)
    if (
        not isinstance(old, ClientSession) or old.state is not C2SState.READY or old._sm is None
        or old.host is not session.host or old.username != session.username
    ):
        return sm.failed("item-not-found", session.services.resumable.ended_h(previd, bare))
    old._sm.acknowledge(element.get("h"))
    return old


async def resume(session: ClientSession, element: etree._Element) -> None:
    """`<resume/>` after SASL (RFC 6120 flow): this connection continues the named session."""
    if not session.module_on(SM_MODULE):
        session.transport.write(sm.failed("feature-not-implemented"))
        return
    outcome = find_resumable(session, element)
    if isinstance(outcome, bytes):
        session.transport.write(outcome)
        return
    session.transport.write(sm.resumed(element.get("previd", ""), handled(outcome)))
    adopt(outcome, session, resend=True)


def adopt(session: ClientSession, newcomer: ClientSession, *, resend: bool) -> None:
    """Resumption: take over `newcomer`'s connection; close ours if it is still open; resend
    what the client has not acknowledged, then anything client state indication held back."""
    old_transport = session.transport
    transport = newcomer.transport
    session.transport = transport
    transport.session = session
    newcomer.state = C2SState.CLOSED
    session.services.connections.discard(newcomer)
    if old_transport is not DETACHED:
        old_transport.session = newcomer  # its late connection_lost now reaches a closed session
        old_transport.close()
    session.hibernated_at = 0.0
    session.header_sent = True
    session.last_rx = time.monotonic()
    session.ping_sent = 0.0
    log.info("session %s: %s resumed from %s (stream %s)", session.id, session.jid, transport.peer_ip, newcomer.id)
    state = session._sm
    if resend and state is not None:
        state.requested_at = 0.0
        for data in state.unacked_stanzas():
            transport.write(data)
        if state.unacked:
            transport.write(sm.REQUEST_BYTES)
            state.requested_at = time.monotonic()
    csi, session._csi = session._csi, None  # a new stream starts active (XEP-0352)
    if csi is not None:
        for data in csi.release():
            session._emit(data)
    rest = newcomer._inbox
    newcomer._inbox = None
    if rest:
        session.receive(list(rest))  # type: ignore[arg-type]  # StreamErrors included, in order


__all__ = ["adopt", "enable", "find_resumable", "handled", "resume", "stream_element"]
