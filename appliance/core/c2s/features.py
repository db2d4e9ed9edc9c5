"""What a client stream offers, which depends on its state, its connection and the modules loaded
on its host (RFC 6120 §4.3.2; SASL2, Bind 2, FAST, channel-binding types): the `Offer` the stream
machine writes as `<stream:features/>` and then holds the client to."""

from __future__ import annotations

from typing import TYPE_CHECKING

from appliance.core import events
from appliance.core.c2s.services import CSI_MODULE, SASL2_MODULE, SM_MODULE
from appliance.core.events import SessionEvent
from appliance.xmpp.machine import Offer, SmPolicy
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
    host = session.host
    if host is not None and session.services.accounts.directory_serves(host.name):
        # Directory users have no stored SCRAM keys (their password stays in the directory), so only PLAIN
        # can log them in, and only inside TLS; local accounts log in with PLAIN too (checked against their
        # stored keys). Without TLS only SCRAM is left: directory passwords never cross the network in clear.
        return ["PLAIN"] if secure else [name for name in names if name != "PLAIN"]
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


async def offer(session: ClientSession) -> Offer:
    """The offer for the session's current state (the machine picks what the state shows)."""
    assert session.host is not None
    loaded = session.loaded_modules()
    transport = session.transport
    required = tls_required(session)
    offered: list[str] = []
    bind2: list[str] | None = None
    sasl2 = SASL2_MODULE in loaded
    if session.state is C2SState.UNAUTHENTICATED:
        offered = mechanisms(session)
        if offered and sasl2 and session.module_options(SASL2_MODULE).bind2:
            bind2 = await bind2_features(session, loaded)
    sm_policy = None
    if SM_MODULE in loaded:
        options = session.module_options(SM_MODULE)
        sm_policy = SmPolicy(max_queue=options.max_queue, resume_timeout=options.resume_timeout)
    bindings = advertised_bindings(session)
    extra = [element for provider in session.host.stream_features if (element := provider(session)) is not None]
    return Offer(
        starttls=not transport.secure and transport.can_start_tls(),
        starttls_required=required,
        encryption_required=not transport.secure and required,
        mechanisms=tuple(offered),
        sasl2=sasl2,
        bind2=tuple(bind2) if bind2 is not None else None,
        fast=tuple(fast_mechanisms(session)) if sasl2 else (),
        channel_bindings=tuple(bindings) if bindings is not None else None,
        sm=sm_policy,
        csi=CSI_MODULE in loaded,
        legacy_session=session.services.config.c2s.legacy_session,
        extra=tuple(extra),
    )


__all__ = ["advertised_bindings", "fast_mechanisms", "mechanisms", "offer", "tls_required"]
