"""Federation with a real Prosody: juliet@parlour.test on Parlour, romeo@prosody.test on Prosody.

Prosody runs in a network namespace with its own address and finds Parlour through SRV/A records that
a DNS server started by the test serves (Parlour's resolver asks the same server). Covered: messages
both ways, the subscription handshake and presence across servers, a message to an offline romeo
stored by Prosody and delivered at his next login, Server Dialback when neither trusts the other's
certificate, and SASL EXTERNAL with certificates from a CA both trust (valid certificates required).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.config.model import TlsConfig
from tests.integration.cross_server import parlour_facing, peer_client, running
from tests.integration.harness import PASSWORD, Client, Harness
from tests.integration.prosody_peer import FederationCA, Namespace, ProsodyPeer, unavailable
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
        client = Client(f"{jid}/test", PASSWORD, self.ca.pem)
        self.parlour.clients.append(client)
        client.connect(host="127.0.0.1", port=self.parlour.port)
        await asyncio.wait_for(client.started.wait(), 15)
        await client.get_roster()
        client.send_presence()
        return client

    def outgoing(self) -> list:
        assert self.parlour.server.federation is not None
        return [c for c in self.parlour.server.federation.federation.connections() if c.outgoing]


async def _world(tmp_path: Path, *, trusted: bool) -> AsyncIterator[World]:
    ca = FederationCA(tmp_path / "ca")
    with Namespace() as ns:
        zone = {
            (f"_xmpp-server._tcp.{PROSODY}.", "SRV"): [f"0 5 5269 {PROSODY}."],
            (f"{PROSODY}.", "A"): [ns.inner],
            (f"{PARLOUR}.", "A"): [ns.outer],
        }
        async with DnsServer(zone, host=ns.outer, port=53):
            prosody = ProsodyPeer(tmp_path / "prosody", ns, PROSODY, certificate=ca.issue(PROSODY), cafile=ca.pem,
                                  secure_auth=trusted, users={"romeo": "r0me0"})
            if trusted:
                mine = ca.issue(PARLOUR)
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
    juliet = await world.juliet()
    romeo = await world.romeo()
    juliet.send_message(mto=f"romeo@{PROSODY}", mbody="Certified", mtype="chat")
    assert (await romeo.next_message(20))["body"] == "Certified"
    romeo.send_message(mto=f"juliet@{PARLOUR}", mbody="Verified", mtype="chat")
    assert (await juliet.next_message(20))["body"] == "Verified"
    # IQs both ways: each server answers a ping from the other's user (XEP-0199)
    await juliet.plugin["xep_0199"].ping(jid=PROSODY, timeout=10)
    await romeo.plugin["xep_0199"].ping(jid=PARLOUR, timeout=10)
    [link] = world.outgoing()
    assert link.secure_method == "external" and link.certificate_valid and link.tls_version in ("TLSv1.2", "TLSv1.3")
