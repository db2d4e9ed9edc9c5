"""SASL2 success (XEP-0388) with what may ride on it: inline stream resumption (XEP-0198), Bind 2
(XEP-0386) and FAST tokens (XEP-0484)."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import TYPE_CHECKING

from lxml import etree

from appliance.core import events
from appliance.core.c2s import resumption
from appliance.core.c2s.features import fast_mechanisms
from appliance.core.c2s.services import CSI_MODULE, SASL2_MODULE, SM_MODULE
from appliance.core.events import Bind2Event
from appliance.util.timestamps import format_datetime
from appliance.xmpp import sm
from appliance.xmpp import stream as xs
from appliance.xmpp.effects import Sasl2Success
from appliance.xmpp.jid import JID, JIDError
from appliance.xmpp.ns import NS_BIND2, NS_FAST, NS_SASL2
from appliance.xmpp.stream import C2SState

if TYPE_CHECKING:
    from appliance.core.authn import SaslExchange
    from appliance.core.c2s.session import ClientSession
    from appliance.xmpp.sasl.fast import FastToken


async def succeed(session: ClientSession, effect: Sasl2Success) -> None:
    """Answer a successful `<authenticate/>`: resume, bind or neither, maybe with a FAST token; the
    machine then writes it and the features of the stream that goes on without a restart."""
    exchange, session.exchange = session.exchange, None
    assert exchange is not None
    request, jid = effect.request, effect.jid
    success = etree.Element(f"{{{NS_SASL2}}}success", nsmap={None: NS_SASL2})
    if effect.additional:
        success.append(xs.sasl2_element("additional-data", effect.additional))
    identity = etree.SubElement(success, f"{{{NS_SASL2}}}authorization-identifier")
    identity.text = str(jid)
    token = await _fast_inline(session, exchange, request, jid)
    if session.state is C2SState.CLOSED:
        return  # the connection went away meanwhile: nothing to bind or resume
    resumed: ClientSession | None = None
    resume = request.find(sm.RESUME)
    if resume is not None:
        outcome = resumption.find_resumable(session, resume)
        if isinstance(outcome, bytes):
            success.append(etree.fromstring(outcome))
        else:
            resumed = outcome
            success.append(etree.fromstring(sm.resumed(resume.get("previd", ""), resumed.machine.handled)))
            identity.text = str(resumed.jid)
    bind = request.find(f"{{{NS_BIND2}}}bind")
    if resumed is None and bind is not None and session.module_options(SASL2_MODULE).bind2:
        bound = await _bind2(session, bind)
        if bound is not None:  # else (resource limit) the client may still bind the RFC 6120 way
            success.append(bound)
            identity.text = str(session.jid)
    if token is not None:
        element = etree.SubElement(success, f"{{{NS_FAST}}}token", nsmap={None: NS_FAST})
        element.set("token", token.token)
        element.set("expiry", format_datetime(token.expiry, milliseconds=False))
    session.machine.sasl2_done(etree.tostring(success), resumed=resumed is not None)
    if resumed is not None:
        session.flush()  # <success/> and the empty features go out before the resumed session's stanzas
        resumption.adopt(resumed, session)


async def _fast_inline(
    session: ClientSession, exchange: SaslExchange, request: etree._Element, jid: JID
) -> FastToken | None:
    """Invalidate, rotate or issue a FAST token as the request and the token used ask for."""
    tokens, agent = session.services.fast, session.user_agent
    if tokens is None or agent is None or not session.module_options(SASL2_MODULE).fast:
        return None
    lifetime = session.module_options(SASL2_MODULE).fast_token_lifetime
    fast = request.find(f"{{{NS_FAST}}}fast")
    wanted = request.find(f"{{{NS_FAST}}}request-token")
    used = exchange.token_used
    if used is not None and fast is not None and fast.get("invalidate") in ("1", "true"):
        await tokens.invalidate(jid, agent)
        used = None
    mechanism = wanted.get("mechanism", "") if wanted is not None else None
    if mechanism is None and used is not None and used.expiry - time.time() < lifetime / 2:
        mechanism = used.mechanism  # due for rotation
    if mechanism is None:
        return None
    if mechanism not in fast_mechanisms(session):
        return None  # not a mechanism we offered on this connection: no token
    return await tokens.issue(jid, agent, mechanism, lifetime)


async def _bind2(session: ClientSession, bind: etree._Element) -> etree._Element | None:
    """Bind 2: a resource from the client's tag and our suffix, then the inline features."""
    assert session.username is not None
    tag = (bind.findtext(f"{{{NS_BIND2}}}tag") or "").strip()
    agent = session.user_agent
    if agent:  # the same client gets the same resource, and its older sessions end
        digest = hashlib.sha256(session.services.fake_secret + f"\0{session.username}\0{agent}".encode())
        suffix = digest.hexdigest()[:12]
    else:
        suffix = secrets.token_hex(6)
    resource = f"{tag}/{suffix}" if tag else suffix
    try:
        jid = JID.make(session.username, session.host.name if session.host else "", resource)
    except JIDError:
        jid = JID.make(session.username, session.host.name if session.host else "", suffix)
    if agent:
        for other in session.services.sessions.resources(jid):
            if getattr(other, "user_agent", None) == agent and other.jid != jid:
                other.close("conflict", "Replaced by a new session of the same client")
    error = session.bind_jid(jid, replace=True)
    if error is not None:
        return None
    bound = etree.Element(f"{{{NS_BIND2}}}bound", nsmap={None: NS_BIND2})
    for child in bind:
        if child.tag == f"{{{NS_BIND2}}}tag" or not isinstance(child.tag, str):
            continue
        if child.tag == sm.ENABLE and session.module_on(SM_MODULE):
            bound.append(etree.fromstring(session.machine.enable_sm(child)))
        elif child.tag in (xs.CSI_ACTIVE, xs.CSI_INACTIVE) and session.module_on(CSI_MODULE):
            session.set_client_state(child.tag == xs.CSI_ACTIVE)
        elif session.host is not None:
            await session.host.hooks.fire(events.BIND2_ENABLE, Bind2Event(session, child, bound))
    return bound


__all__ = ["succeed"]
