"""SASL (RFC 6120 §6) and SASL2 (XEP-0388) on a client session: one `SaslExchange`, two ways of writing
its challenges, success and failure; failed attempts count towards the per-IP and per-account limits."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from lxml import etree

from appliance.core.authn import SaslExchange
from appliance.core.c2s import features
from appliance.core.c2s.sasl2 import succeed as sasl2_succeed
from appliance.core.c2s.services import SASL2_MODULE
from appliance.xmpp import stream as xs
from appliance.xmpp.effects import sasl_payload
from appliance.xmpp.errors import StreamError
from appliance.xmpp.ns import NS_SASL2
from appliance.xmpp.sasl import SaslFailure
from appliance.xmpp.stream import C2SState

if TYPE_CHECKING:
    from appliance.core.c2s.session import ClientSession
    from appliance.xmpp.jid import JID

log = logging.getLogger("appliance.core.c2s")


async def begin(session: ClientSession, element: etree._Element) -> None:
    """`<auth/>` (RFC 6120) or `<authenticate/>` (XEP-0388): check, then start the exchange."""
    sasl2 = element if element.tag == xs.AUTHENTICATE else None
    mechanism = element.get("mechanism", "")
    offered = features.mechanisms(session)
    if sasl2 is not None:
        if not session.module_on(SASL2_MODULE):
            raise StreamError.unsupported_stanza_type("SASL2 is not offered here")
        agent = sasl2.find(f"{{{NS_SASL2}}}user-agent")
        session.user_agent = agent.get("id") if agent is not None else None
    allowed = offered + (features.fast_mechanisms(session) if sasl2 is not None else [])
    if mechanism not in allowed:
        if not session.transport.secure and features.tls_required(session):
            _failure(session, sasl2, "encryption-required", "Use STARTTLS first")
        else:
            _failure(session, sasl2, "invalid-mechanism")
        return
    blocked = session.services.ip_failures.blocked_for(session.transport.peer_ip, time.monotonic())
    if blocked:
        _failure(session, sasl2, "temporary-auth-failure", f"Too many failed logins; try again in {int(blocked) + 1} s")
        return
    text = element.text if sasl2 is None else sasl2.findtext(f"{{{NS_SASL2}}}initial-response")
    if sasl2 is not None and text is None:
        text = ""  # SASL2: no <initial-response/> means none, not an empty one
    exchange = SaslExchange(session, mechanism, offered, request=sasl2)
    session.state = C2SState.AUTHENTICATING
    try:
        challenge = await exchange.start(sasl_payload(text))
    except SaslFailure as failure:
        await _failed(session, exchange, failure, sasl2)
        return
    await _next(session, exchange, challenge, sasl2)


async def _next(
    session: ClientSession, exchange: SaslExchange, challenge: bytes | None, sasl2: etree._Element | None
) -> None:
    if challenge is None:
        await _succeeded(session, exchange, sasl2)
        return
    session._sasl = exchange
    if sasl2 is None:
        session.transport.write(xs.sasl_element("challenge", challenge))
    else:
        session.transport.write(etree.tostring(xs.sasl2_element("challenge", challenge)))


async def respond(session: ClientSession, element: etree._Element) -> None:
    """`<response/>` or `<abort/>` (either profile) to the challenge outstanding."""
    exchange, session._sasl = session._sasl, None
    sasl2 = exchange.request if exchange is not None else None
    is_sasl2 = element.tag in (xs.SASL2_RESPONSE, xs.SASL2_ABORT)
    if exchange is None or element.tag in (xs.ABORT, xs.SASL2_ABORT) or exchange.sasl2 != is_sasl2:
        session.state = C2SState.UNAUTHENTICATED
        _failure(session, sasl2, "aborted")
        return
    try:
        challenge = await exchange.step(sasl_payload(element.text))
    except SaslFailure as failure:
        await _failed(session, exchange, failure, sasl2)
        return
    await _next(session, exchange, challenge, sasl2)


def _count_failure(session: ClientSession, jid: JID) -> None:
    now = time.monotonic()
    session.services.stats["auth_failures"] = session.services.stats.get("auth_failures", 0) + 1
    if session.services.ip_failures.record(session.transport.peer_ip, now):
        log.warning("blocking %s after repeated failed logins", session.transport.peer_ip)
    if session.services.account_failures.record(str(jid), now):
        log.warning("blocking logins to %s after repeated failures", jid)


async def _failed(
    session: ClientSession, exchange: SaslExchange, failure: SaslFailure, sasl2: etree._Element | None
) -> None:
    if failure.condition == "not-authorized" and exchange.jid is not None:
        _count_failure(session, exchange.jid)
    session._auth_attempts += 1
    session.state = C2SState.UNAUTHENTICATED
    session._sasl = None
    delay = session.services.config.limits.auth_failure_delay
    if failure.condition == "not-authorized" and delay > 0:
        await asyncio.sleep(delay)
    _failure(session, sasl2, failure.condition)
    if session._auth_attempts >= 3:
        session.stream_error(StreamError.policy_violation("Too many failed authentication attempts"))


async def _succeeded(session: ClientSession, exchange: SaslExchange, sasl2: etree._Element | None) -> None:
    jid = exchange.jid
    assert jid is not None
    session.username = jid.local
    session.services.account_failures.clear(str(jid))
    session.state = C2SState.AUTHENTICATED
    log.info("session %s: %s authenticated from %s (%s)", session.id, jid, session.transport.peer_ip,
             exchange.mechanism)
    if sasl2 is None:
        session.transport.write(xs.sasl_element("success", exchange.additional or None))
        if session._inbox:
            session._inbox.clear()
        session.transport.reset_parser()
        return
    await sasl2_succeed(session, exchange, sasl2, jid)


def _failure(session: ClientSession, sasl2: etree._Element | None, condition: str, text: str = "") -> None:
    if session.state is C2SState.AUTHENTICATING:
        session.state = C2SState.UNAUTHENTICATED
    if sasl2 is None:
        session.transport.write(xs.sasl_element("failure", None, condition, text))
    else:
        session.transport.write(xs.sasl2_failure(condition, text))


__all__ = ["begin", "respond"]
