"""Periodic care of all client connections, and waiting for the work sessions leave behind."""

from __future__ import annotations

import asyncio
import logging

from appliance.core.c2s.services import SM_MODULE, C2SServices
from appliance.xmpp.errors import StreamError
from appliance.xmpp.stream import C2SState

log = logging.getLogger("appliance.core.c2s")


def sweep(services: C2SServices, now: float) -> None:
    """Periodic housekeeping over all connections: handshake and idle timeouts, pings, parser
    hibernation, stream-management acknowledgement requests and the end of resumption windows."""
    c2s = services.config.c2s
    for session in list(services.connections):
        idle = now - session.last_rx
        if session.state is not C2SState.READY:
            if now - session.started > c2s.handshake_timeout:
                session.stream_error(StreamError.connection_timeout("Negotiation took too long"))
            continue
        state = session.sm
        if session.hibernated_at:
            if now - session.hibernated_at > session.module_options(SM_MODULE).resume_timeout:
                log.info("session %s: %s was not resumed in time", session.id, session.jid)
                session.finish()
            continue
        dead = (session.ping_sent and now - session.ping_sent > c2s.ping_timeout) or (
            state is not None and state.requested_at and now - state.requested_at > c2s.ping_timeout + c2s.idle_timeout
        )
        if dead:
            if state is not None and state.resumable:
                session.drop()  # a silent peer may come back: keep the session for resumption
            else:
                session.stream_error(StreamError.connection_timeout("No answer to ping"))
        elif not session.ping_sent and idle > c2s.idle_timeout:
            session.ping()
        else:
            if state is not None and state.unacked and not state.requested_at:
                session.request_ack(state)
            hibernate = getattr(session.transport, "hibernate", None)
            if hibernate is not None and idle > 5:
                hibernate()
    services.resumable.prune(now, keep=3600.0)


async def settle(services: C2SServices) -> None:
    """Wait for the rerouting of unacknowledged stanzas of ended sessions (at shutdown, before storage closes)."""
    while services.background:
        await asyncio.gather(*list(services.background), return_exceptions=True)


__all__ = ["settle", "sweep"]
