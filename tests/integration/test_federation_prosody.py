"""Federation with a real Prosody: juliet@parlour.test on Parlour, romeo@prosody.test on Prosody.

Prosody runs in a network namespace with its own address and finds Parlour through SRV/A records that
a DNS server started by the test serves (Parlour's resolver asks the same server). Covered: messages
both ways, the subscription handshake and presence across servers, a message to an offline romeo
stored by Prosody and delivered at his next login, Server Dialback when neither trusts the other's
certificate, SASL EXTERNAL both ways with certificates from a CA both trust (valid certificates
required), and one bidirectional stream (XEP-0288, Prosody's mod_s2s_bidi) carrying both directions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from appliance.config.model import TlsConfig
from appliance.services.federation import Link
from tests.integration.cross_server import parlour_facing, peer_client, running
from tests.integration.harness import PASSWORD, Client, Harness
from tests.integration.prosody_peer import FederationCA, Namespace, ProsodyPeer, srv_id, unavailable
from tests.net.dnsserver import DnsServer

REASON = unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"Prosody federation tests: {REASON}")

PARLOUR, PROSODY = "parlour.test", "prosody.test"


@dataclass
class World:
    parlour: Harness
    prosody: ProsodyPeer
    ca: FederationCA

    async def romeo(self, resource: str = "phone") -> Client:
        return await peer_client(f"romeo@{PROSODY}/{resource}", "r0me0", self.ca.pem, self.prosody.address,
                                 self.parlour.clients)

    async def juliet(self) -> Client:
        """juliet@parlour.test, trusting whichever CA signed Parlour's certificate."""
        jid = await self.parlour.user("juliet")
        if self.parlour.ca_file.exists():
            return await self.parlour.client(jid)
        client = Client(f"{jid}/test", PASSWORD, self.ca.pem, check_hostname=self.parlour.client_check_hostname)
        self.parlour.clients.append(client)
        client.connect(host="127.0.0.1", port=self.parlour.port)
        await asyncio.wait_for(client.started.wait(), 15)
        await client.get_roster()
        client.send_presence()
        return client

    async def chat(self, there: str, back: str) -> tuple[Client, Client]:
        """juliet (Parlour) writes `there` to romeo (Prosody), who answers `back`; both arrive."""
        juliet = await self.juliet()
        romeo = await self.romeo()
        juliet.send_message(mto=f"romeo@{PROSODY}", mbody=there, mtype="chat")
        assert (await romeo.next_message(20))["body"] == there
        romeo.send_message(mto=f"juliet@{PARLOUR}", mbody=back, mtype="chat")
        assert (await juliet.next_message(20))["body"] == back
        return juliet, romeo

    def outgoing(self) -> list:
        assert self.parlour.server.federation is not None
        return [c for c in self.parlour.server.federation.federation.connections() if c.outgoing]

    def links(self) -> list[Link]:
        """Parlour's s2s connections as `parlour federation status` shows them."""
        assert self.parlour.server.services is not None
        return self.parlour.server.services.federation.links()

    def counters(self) -> dict[str, int]:
        """Parlour's s2s totals since start, as `parlour federation status` shows them."""
        assert self.parlour.server.services is not None
        return self.parlour.server.services.federation.counters()


async def _world(tmp_path: Path, *, trusted: bool, bidi: bool = False,
                 names: list[x509.GeneralName] | None = None) -> AsyncIterator[World]:
    """`names`: the identifiers of Parlour's certificate (trusted only; default its DNS-ID)."""
    ca = FederationCA(tmp_path / "ca")
    with Namespace() as ns:
        zone = {
            (f"_xmpp-server._tcp.{PROSODY}.", "SRV"): [f"0 5 5269 {PROSODY}."],
            (f"{PROSODY}.", "A"): [ns.inner],
            (f"{PARLOUR}.", "A"): [ns.outer],
        }
        async with DnsServer(zone, host=ns.outer, port=53):
            prosody = ProsodyPeer(tmp_path / "prosody", ns, PROSODY, certificate=ca.issue(PROSODY), cafile=ca.pem,
                                  secure_auth=trusted, users={"romeo": "r0me0"}, bidi=bidi)
            if trusted:
                mine = ca.issue(PARLOUR, names=names)
                parlour = await parlour_facing(ns, tmp_path / "parlour", PARLOUR,
                                               tls=TlsConfig(certificate=mine.cert, private_key=mine.key),
                                               ca_bundle=ca.pem, require_valid_certificates=True)
            else:
                parlour = await parlour_facing(ns, tmp_path / "parlour", PARLOUR)
            async with running(parlour, prosody):
                yield World(parlour, prosody, ca)


@pytest.fixture
async def untrusted(tmp_path: Path) -> AsyncIterator[World]:
    async for world in _world(tmp_path, trusted=False):
        yield world


@pytest.fixture
async def trusted(tmp_path: Path) -> AsyncIterator[World]:
    async for world in _world(tmp_path, trusted=True):
        yield world


@pytest.fixture
async def bidi(tmp_path: Path) -> AsyncIterator[World]:
    async for world in _world(tmp_path, trusted=True, bidi=True):
        yield world


async def test_messages_presence_and_offline_with_dialback(untrusted: World) -> None:
    world = untrusted
    juliet = await world.juliet()
    romeo = await world.romeo()
    juliet.send_message(mto=f"romeo@{PROSODY}", mbody="Wherefore art thou, Romeo?", mtype="chat")
    got = await romeo.next_message(20)
    assert got["body"] == "Wherefore art thou, Romeo?" and got["from"].bare == f"juliet@{PARLOUR}"
    romeo.send_message(mto=f"juliet@{PARLOUR}", mbody="By a name I know not", mtype="chat")
    back = await juliet.next_message(20)
    assert back["body"] == "By a name I know not" and back["from"].bare == f"romeo@{PROSODY}"
    assert [c.secure_method for c in world.outgoing()] == ["dialback"]  # neither trusts the other's CA

    # subscription handshake across servers: romeo's client approves, juliet then sees him online
    juliet.send_presence(pto=f"romeo@{PROSODY}", ptype="subscribe")
    while True:
        presence = await juliet.next_presence(20)
        if presence["from"].bare == f"romeo@{PROSODY}" and presence["type"] in ("available", ""):
            break
    await juliet.get_roster()
    assert juliet.client_roster[f"romeo@{PROSODY}"]["subscription"] in ("to", "both")

    # a new login of juliet probes her contacts (RFC 6121 §4.3): Prosody answers with romeo's presence
    tablet = await world.parlour.client(f"juliet@{PARLOUR}", resource="tablet")
    while (await tablet.next_presence(20))["from"].bare != f"romeo@{PROSODY}":
        pass

    # romeo offline: Prosody keeps the message and hands it over at his next login
    romeo.disconnect()
    await asyncio.sleep(0.5)
    juliet.send_message(mto=f"romeo@{PROSODY}", mbody="Come back", mtype="chat")
    for _ in range(100):
        if "Come back" in world.prosody.offline_messages("romeo"):
            break
        await asyncio.sleep(0.1)
    assert "Come back" in world.prosody.offline_messages("romeo")
    romeo = await world.romeo("laptop")
    assert (await romeo.next_message(20))["body"] == "Come back"


async def test_sasl_external_with_trusted_certificates(trusted: World) -> None:
    world = trusted
    juliet, romeo = await world.chat("Certified", "Verified")
    # IQs both ways: each server answers a ping from the other's user (XEP-0199)
    await juliet.plugin["xep_0199"].ping(jid=PROSODY, timeout=10)
    await romeo.plugin["xep_0199"].ping(jid=PARLOUR, timeout=10)
    [link] = world.outgoing()
    assert link.secure_method == "external" and link.certificate_valid and link.tls_version in ("TLSv1.2", "TLSv1.3")
    # without bidi Prosody opened a connection of its own, and Parlour took its certificate too (serverAuth-
    # only like Parlour's: EXTERNAL incoming must not want clientAuth)
    shown = {(link.domain, link.direction): (link.auth, link.bidi) for link in world.links()}
    assert shown == {(PROSODY, "out"): ("external", False), (PROSODY, "in"): ("external", False)}, shown
    assert world.counters().get("dialback_failures", 0) == 0


async def test_srv_id_certificate_both_ways_with_prosody(tmp_path: Path) -> None:
    """Parlour's certificate names it by SRV-ID only (`_xmpp-server.parlour.test`), no DNS-ID: Prosody,
    which requires valid certificates, accepts it for Parlour's EXTERNAL and when connecting to Parlour.
    (Prosody 0.12 does not take an XmppAddr alone for a server: that case is covered Parlour to Parlour.)"""
    async for world in _world(tmp_path, trusted=True, names=[srv_id(f"_xmpp-server.{PARLOUR}")]):
        world.parlour.client_check_hostname = False  # Python's ssl matches DNS-IDs only
        await world.chat("By any other name", "as sweet")
        shown = {(link.domain, link.direction): link.auth for link in world.links()}
        assert shown == {(PROSODY, "out"): "external", (PROSODY, "in"): "external"}, shown


async def test_one_bidirectional_stream_with_prosody(bidi: World) -> None:
    """Prosody's mod_s2s_bidi on: Parlour's stream to Prosody (EXTERNAL) brings romeo's replies back and
    Prosody opens no connection of its own; once it is gone, Prosody's own stream (it asks for bidi too)
    carries juliet's replies."""
    world = bidi
    juliet = await world.juliet()
    romeo = await world.romeo()
    for n in range(2):
        juliet.send_message(mto=f"romeo@{PROSODY}", mbody=f"there {n}", mtype="chat")
        assert (await romeo.next_message(20))["body"] == f"there {n}"
        romeo.send_message(mto=f"juliet@{PARLOUR}", mbody=f"back {n}", mtype="chat")
        assert (await juliet.next_message(20))["body"] == f"back {n}"
    [out] = world.links()
    assert (out.domain, out.direction, out.auth, out.bidi) == (PROSODY, "out", "external", True), out
    assert (out.stanzas_out, out.stanzas_in) == (2, 2)  # both directions on this one stream
    assert world.counters() == {"connections_out": 1, "stanzas_out": 2, "stanzas_in": 2}

    [connection] = world.outgoing()
    connection.close()
    await asyncio.wait_for(connection.finished.wait(), 5)
    romeo.send_message(mto=f"juliet@{PARLOUR}", mbody="first", mtype="chat")
    assert (await juliet.next_message(20))["body"] == "first"
    juliet.send_message(mto=f"romeo@{PROSODY}", mbody="answer", mtype="chat")
    assert (await romeo.next_message(20))["body"] == "answer"
    [incoming] = world.links()
    assert (incoming.direction, incoming.auth, incoming.bidi) == ("in", "external", True), incoming
    assert (incoming.stanzas_in, incoming.stanzas_out) == (1, 1)
    counters = world.counters()
    assert (counters["connections_out"], counters["connections_in"]) == (1, 1), counters
