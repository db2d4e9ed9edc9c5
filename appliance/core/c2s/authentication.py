"""SASL (RFC 6120 §6) and SASL2 (XEP-0388) exchanges for the stream machine: it decides what is
allowed and writes the answers; this runs the mechanism against the account store (one
`SaslExchange`) and keeps the per-IP and per-account limits on failed attempts."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from appliance.core.authn import SaslExchange
from appliance.xmpp import effects as fx
from appliance.xmpp.sasl import SaslFailure

if TYPE_CHECKING:
    from appliance.core.c2s.session import ClientSession
    from appliance.xmpp.jid import JID

log = logging.getLogger("appliance.core.c2s")


async def run(session: ClientSession, effect: fx.Authenticate | fx.SaslResponse) -> None:
    """Start an exchange (`Authenticate`) or take the client's next response, and tell the machine
    how it went: a challenge, success or failure."""
    machine = session.machine
    if isinstance(effect, fx.Authenticate):
        exchange = session.exchange = SaslExchange(
            session, effect.mechanism, list(effect.offered), request=effect.request
        )
        step = exchange.start
    else:
        exchange = session.exchange
        assert exchange is not None  # the machine asks for a response only while one runs
        step = exchange.step
    try:
        challenge = await step(effect.payload())
    except SaslFailure as failure:
        session.exchange = None
        await _failed(session, exchange, failure)
        return
    if challenge is not None:
        machine.sasl_challenge(challenge)
        return
    jid = exchange.jid
    assert jid is not None
    # Checked once the credentials are proven, so the answer tells nobody else the account exists.
    if await session.services.accounts.is_disabled(jid):
        session.exchange = None
        log.info("session %s: %s is disabled; login refused", session.id, jid)
        session.machine.sasl_failure("account-disabled")
        return
    session.services.auth_throttle.succeeded(session.transport.peer_ip, str(jid))
    session.client = machine.user_agent_software or session.client
    stats = session.services.stats
    stats["logins"] = stats.get("logins", 0) + 1
    log.info("session %s: %s authenticated from %s (%s%s)", session.id, jid, session.transport.peer_ip,
             exchange.mechanism, f", {session.client}" if session.client else "")
    if not exchange.sasl2:
        session.exchange = None
    machine.sasl_success(jid, exchange.additional)


def _count_failure(session: ClientSession, jid: JID) -> None:
    session.services.stats["auth_failures"] = session.services.stats.get("auth_failures", 0) + 1
    session.services.auth_throttle.failed(session.transport.peer_ip, str(jid), time.monotonic())
    # Warning level: the console's log page and fail2ban-style tools look for these.
    log.warning("session %s: failed login for %s from %s", session.id, jid, session.transport.peer_ip)


async def _failed(session: ClientSession, exchange: SaslExchange, failure: SaslFailure) -> None:
    if failure.condition == "not-authorized" and exchange.jid is not None:
        _count_failure(session, exchange.jid)
    delay = session.services.config.limits.auth_failure_delay
    if failure.condition == "not-authorized" and delay > 0:
        await asyncio.sleep(delay)
    session.machine.sasl_failure(failure.condition)


__all__ = ["run"]
