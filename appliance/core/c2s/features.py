"""The stream features a client session offers, which depend on its state, its connection and the
modules loaded on its host (RFC 6120 §4.3.2; SASL2, Bind 2, FAST, channel-binding types)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lxml import etree

from appliance.core import events
from appliance.core.c2s.services import CSI_MODULE, SASL2_MODULE, SM_MODULE
from appliance.core.events import SessionEvent
from appliance.xmpp import sm
from appliance.xmpp import stream as xs
from appliance.xmpp.ns import NS_CSI, NS_SM
from appliance.xmpp.sasl import ht, scram
from appliance.xmpp.stream import C2SState

if TYPE_CHECKING:
    from appliance.core.c2s.session import ClientSession


def tls_required(session: ClientSession) -> bool:
    """Whether this connection must be encrypted before authentication (the loopback exemption is a setting)."""
    c2s = session.services.config.c2s
    if not c2s.require_encryption:
        return False
    return not (c2s.allow_plaintext_on_loopback and session.transport.loopback)


def mechanisms(session: ClientSession) -> list[str]:
    """SASL mechanisms for this connection, best first; none on plain TCP where TLS is required."""
    secure = session.transport.secure
    if not secure and tls_required(session):
        return []
    names = scram.mechanism_names(secure, session.transport.channel_bindings if secure else {})
    if not secure and "PLAIN" not in names:
        names.append("PLAIN")  # only reachable when plaintext is explicitly allowed
    return names


def advertised_bindings(session: ClientSession) -> list[str] | None:
    """Channel-binding types announced with XEP-0440 (None: not announced), best first."""
    if not session.transport.secure or not session.transport.channel_bindings:
        return None
    return sorted(session.transport.channel_bindings, reverse=True)  # tls-server-end-point, tls-exporter


def fast_mechanisms(session: ClientSession) -> list[str]:
    """FAST token mechanisms (XEP-0484) on this connection: only over TLS, with SASL2's `fast` option."""
    transport = session.transport
    if not (transport.secure and session.services.fast is not None and session.module_options(SASL2_MODULE).fast):
        return []
    return ht.mechanism_names(session.transport.channel_bindings)


async def bind2_features(session: ClientSession, loaded: set[str]) -> list[str]:
    """What a Bind 2 request may enable inline: ours, then whatever modules add (e.g. carbons)."""
    assert session.host is not None
    vars_ = [NS_SM] if SM_MODULE in loaded else []
    if CSI_MODULE in loaded:
        vars_.append(NS_CSI)
    return list(await session.host.hooks.fold(events.BIND2_FEATURES, SessionEvent(session), vars_))


async def stream_features(session: ClientSession) -> list[etree._Element]:
    """`<stream:features/>` children for the session's current state."""
    features: list[etree._Element] = []
    loaded = session.loaded_modules()
    if session.state is C2SState.UNAUTHENTICATED:
        if not session.transport.secure and session.transport.can_start_tls():
            features.append(xs.starttls_feature(tls_required(session)))
        offered = mechanisms(session)
        if offered:
            features.append(xs.mechanisms_feature(offered))
            if SASL2_MODULE in loaded:
                options = session.module_options(SASL2_MODULE)
                features.append(xs.sasl2_feature(
                    offered,
                    resume=SM_MODULE in loaded,
                    bind_features=await bind2_features(session, loaded) if options.bind2 else None,
                    fast=fast_mechanisms(session),
                ))
            bindings = advertised_bindings(session)
            if bindings is not None:
                features.append(xs.channel_binding_feature(bindings))
    elif session.state is C2SState.AUTHENTICATED:
        features.append(xs.bind_feature())
        if session.services.config.c2s.legacy_session:
            features.append(xs.session_feature())
    if session.state in (C2SState.AUTHENTICATED, C2SState.READY):
        if SM_MODULE in loaded and session._sm is None:
            features.append(sm.feature())
        if CSI_MODULE in loaded:
            features.append(xs.csi_feature())
    assert session.host is not None
    for provider in session.host.stream_features:
        element = provider(session)
        if element is not None:
            features.append(element)
    return features


__all__ = ["advertised_bindings", "fast_mechanisms", "mechanisms", "stream_features", "tls_required"]
