"""RFC 6125 identities between two Parlours over real sockets: certificates from one test CA that both
trust, naming their server by XmppAddr only, by SRV-ID only, by a wildcard, or naming another domain.
Each side checks the other's certificate both when it connects (outgoing TLS) and when the other
authenticates with SASL EXTERNAL (incoming)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from cryptography import x509

from appliance.app import Parlour
from appliance.config.model import TlsConfig
from tests.integration.federated import FEDERATION_ON, chat_both_ways, s2s_route
from tests.integration.harness import Harness, free_port, make_config
from tests.integration.prosody_peer import FederationCA, Issued, srv_id, xmpp_addr

A, B = "a.example.test", "b.example.test"


class Presenting(Harness):
    """A Parlour serving a certificate of `ca`, which its clients trust; they check the chain only (an
    XmppAddr or SRV-ID is no name Python's ssl matches)."""

    client_check_hostname = False

    def __init__(self, server: Parlour, ca: FederationCA) -> None:
        super().__init__(server)
        self._ca = ca

    @property
    def ca_file(self) -> Path:
        return self._ca.pem


@asynccontextmanager
async def presenting(base: Path, ca: FederationCA, certs: dict[str, Issued],
                     **s2s: object) -> AsyncIterator[tuple[Harness, Harness]]:
    """Parlours for A and B serving `certs[domain]`, trusting `ca` only; `s2s` changes both [s2s]."""
    ports = {A: free_port(), B: free_port()}
    servers: list[Harness] = []
    try:
        for domain, peer in ((A, B), (B, A)):
            cfg = make_config(base / domain)
            cfg = replace(cfg, hosts=(replace(cfg.hosts[0], name=domain),), federation=FEDERATION_ON,
                          tls=TlsConfig(certificate=certs[domain].cert, private_key=certs[domain].key),
                          s2s=s2s_route(ports[domain], peer, ports[peer], ca_bundle=ca.pem, **s2s))
            server = Parlour(cfg)
            await server.start()
            servers.append(Presenting(server, ca))
        yield servers[0], servers[1]
    finally:
        for harness in servers:
            await harness.close()


def links(h: Harness) -> set[tuple[bool, str, bool]]:
    """(outgoing, authentication method, certificate valid) of each authenticated s2s connection."""
    assert h.server.federation is not None
    return {(c.outgoing, c.secure_method, c.certificate_valid)
            for c in h.server.federation.federation.connections() if c.machine.pairs}


async def test_xmpp_addr_and_srv_id_only(tmp_path: Path) -> None:
    """A shows an XmppAddr and B an SRV-ID, neither a DNS-ID; valid certificates are required: both
    directions are verified and authenticated with SASL EXTERNAL."""
    ca = FederationCA(tmp_path / "ca")
    certs = {A: ca.issue(A, names=[xmpp_addr(A)]), B: ca.issue(B, names=[srv_id(f"_xmpp-server.{B}")])}
    async with presenting(tmp_path, ca, certs, require_valid_certificates=True, bidi=False) as (a, b):
        await chat_both_ways(a, b)
        for h in (a, b):
            assert links(h) == {(True, "external", True), (False, "external", True)}, links(h)


async def test_wildcard_accepted_and_wrong_name_refused(tmp_path: Path) -> None:
    """B shows `*.example.test` (valid for B); A shows a certificate for another domain, from the same
    trusted CA: B refuses A's EXTERNAL and A's name when connecting, and dialback carries that traffic.
    B asks A about A's dialback key on a connection A authenticates with EXTERNAL: the question waits for
    SASL's outcome (sent before <success/>, it reached A's discarded stream: a stream error).
    (No bidirectional streams here: one connection each way, so each check happens once.)"""
    ca = FederationCA(tmp_path / "ca")
    certs = {A: ca.issue(A, names=[x509.DNSName("c.example.test"), xmpp_addr("c.example.test")]),
             B: ca.issue(B, names=[x509.DNSName("*.example.test")])}
    async with presenting(tmp_path, ca, certs, bidi=False) as (a, b):
        await chat_both_ways(a, b)
        # A verified B's wildcard when connecting, but B refused A's EXTERNAL: dialback. B's connection to
        # A (for the dialback check, then B's own traffic) did not verify A's name; A took B's EXTERNAL.
        assert links(a) == {(True, "dialback", True), (False, "external", True)}, links(a)
        assert links(b) == {(True, "external", False), (False, "dialback", False)}, links(b)
