"""Federation with a real ejabberd: juliet@parlour.test on Parlour, romeo@ejabberd.test on ejabberd.

ejabberd runs in a network namespace with its own address and finds Parlour through SRV/A records served
by a DNS server the test starts (Parlour asks the same server). One ejabberd and one Parlour serve the
whole module (an Erlang VM takes seconds to boot); every test uses its own accounts. Neither server
trusts the other's certificate, so they authenticate with Server Dialback; the last test starts a second
Parlour, verified.test, with a certificate from the CA ejabberd trusts, and the two use SASL EXTERNAL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from lxml import etree

from appliance.config.model import TlsConfig
from tests.integration.cross_server import disconnect_all, parlour_facing, peer_client, running
from tests.integration.ejabberd_peer import EjabberdPeer, unavailable
from tests.integration.harness import Client, Harness
from tests.integration.prosody_peer import FederationCA, Namespace
from tests.net.dnsserver import DnsServer

REASON = unavailable()
pytestmark = [pytest.mark.skipif(REASON is not None, reason=f"ejabberd federation tests: {REASON}"),
              pytest.mark.asyncio(loop_scope="module")]

PARLOUR, VERIFIED, EJABBERD = "parlour.test", "verified.test", "ejabberd.test"
ACCOUNTS = {name: f"{name}-pw" for name in ("romeo", "benvolio", "mercutio", "tybalt", "balthasar", "abram")}
VERIFIED_PORT = 5270


@dataclass
class World:
    ns: Namespace
    ca: FederationCA
    ejabberd: EjabberdPeer
    parlour: Harness
    base: Path
    clients: list[Client] = field(default_factory=list)

    async def remote(self, name: str, resource: str = "phone", *, presence: bool = True) -> Client:
        """`name`@ejabberd.test logged in to ejabberd (STARTTLS with the test CA's certificate)."""
        return await peer_client(f"{name}@{EJABBERD}/{resource}", ACCOUNTS[name], self.ca.pem,
                                 self.ejabberd.address, self.clients, presence=presence)

    async def local(self, name: str, resource: str = "test", *, create: bool = True,
                    server: Harness | None = None) -> Client:
        server = server or self.parlour
        jid = await server.user(name) if create else f"{name}@{server.domain}"
        client = await server.client(jid, resource=resource)
        self.clients.append(client)
        return client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    base = tmp_path_factory.mktemp("ejabberd-federation")
    ca = FederationCA(base / "ca")
    with Namespace(index=1) as ns:
        zone = {
            (f"_xmpp-server._tcp.{EJABBERD}.", "SRV"): [f"0 5 5269 {EJABBERD}."],
            (f"{EJABBERD}.", "A"): [ns.inner],
            (f"{PARLOUR}.", "A"): [ns.outer],
            (f"_xmpp-server._tcp.{VERIFIED}.", "SRV"): [f"0 5 {VERIFIED_PORT} {VERIFIED}."],
            (f"{VERIFIED}.", "A"): [ns.outer],
        }
        async with DnsServer(zone, host=ns.outer, port=53):
            ejabberd = EjabberdPeer(base / "ejabberd", ns, EJABBERD, certificate=ca.issue(EJABBERD),
                                    cafile=ca.pem, users=ACCOUNTS)
            parlour = await parlour_facing(ns, base / "parlour", PARLOUR)
            async with running(parlour, ejabberd):
                yield World(ns, ca, ejabberd, parlour, base)


@pytest_asyncio.fixture(loop_scope="module")
async def world(shared: World) -> AsyncIterator[World]:
    try:
        yield shared
    finally:
        disconnect_all(shared.clients)


def links(h: Harness) -> list:
    assert h.server.federation is not None
    return list(h.server.federation.federation.connections())


async def received(client: Client, body: str, timeout: float = 20):
    """The next message to `client` (it must carry `body`)."""
    got = await client.next_message(timeout)
    assert got["body"] == body, got
    return got


async def test_messages_of_every_type_both_ways_with_dialback(world: World) -> None:
    juliet = await world.local("juliet")
    romeo = await world.remote("romeo")
    for mtype in ("chat", "normal", "headline"):
        juliet.send_message(mto=f"romeo@{EJABBERD}", mbody=f"{mtype} to ejabberd", mtype=mtype)
        got = await received(romeo, f"{mtype} to ejabberd")
        assert got["type"] == mtype and got["from"] == juliet.boundjid
        romeo.send_message(mto=f"juliet@{PARLOUR}", mbody=f"{mtype} to Parlour", mtype=mtype)
        back = await received(juliet, f"{mtype} to Parlour")
        assert back["type"] == mtype and back["from"] == romeo.boundjid
    # neither trusts the other's certificate: Server Dialback, each way, over TLS (s2s_use_starttls: required)
    methods = {(link.outgoing, link.machine.remote, link.secure_method) for link in links(world.parlour)}
    assert (True, EJABBERD, "dialback") in methods and (False, EJABBERD, "dialback") in methods
    assert all(link.tls_version in ("TLSv1.2", "TLSv1.3") for link in links(world.parlour))


async def test_a_message_to_an_unknown_user_bounces_both_ways(world: World) -> None:
    nurse = await world.local("nurse")
    benvolio = await world.remote("benvolio")
    nurse.send_message(mto=f"nobody@{EJABBERD}", mbody="anyone?", mtype="chat")
    error = await nurse.next_message(20)
    assert error["type"] == "error" and error["from"] == f"nobody@{EJABBERD}"
    assert error["error"]["condition"] == "service-unavailable"
    benvolio.send_message(mto=f"nobody@{PARLOUR}", mbody="anyone?", mtype="chat")
    error = await benvolio.next_message(20)
    assert error["type"] == "error" and error["from"] == f"nobody@{PARLOUR}"
    assert error["error"]["condition"] == "service-unavailable"


async def roster_state(client: Client, contact: str) -> tuple[str, bool]:
    """(subscription, pending out) of `contact` in `client`'s roster, as the server says now."""
    await client.get_roster()
    item = client.client_roster[contact]
    return item["subscription"], bool(item["pending_out"])


async def until_subscription(client: Client, contact: str, wanted: str) -> None:
    async with asyncio.timeout(20):
        while (await roster_state(client, contact))[0] != wanted:
            await asyncio.sleep(0.1)


async def test_subscription_handshake_probe_and_unsubscribe_across_servers(world: World) -> None:
    juliet = await world.local("capulet")
    mercutio = await world.remote("mercutio")  # slixmpp approves and subscribes back (auto_authorize)
    juliet.send_presence(pto=f"mercutio@{EJABBERD}", ptype="subscribe")
    await until_subscription(juliet, f"mercutio@{EJABBERD}", "both")
    await until_subscription(mercutio, f"capulet@{PARLOUR}", "both")

    # a new login probes the contacts (RFC 6121 §4.3): ejabberd answers with mercutio's presence
    tablet = await world.local("capulet", "tablet", create=False)
    async with asyncio.timeout(20):
        while str((await tablet.next_presence(20))["from"]) != str(mercutio.boundjid):
            pass
    # and ejabberd's user logging in probes juliet on Parlour
    laptop = await world.remote("mercutio", "laptop")
    async with asyncio.timeout(20):
        while (await laptop.next_presence(20))["from"].bare != f"capulet@{PARLOUR}":
            pass

    # unavailable at logout reaches the contact on the other server
    laptop.disconnect()
    async with asyncio.timeout(20):
        while True:
            presence = await tablet.next_presence(20)
            if str(presence["from"]) == str(laptop.boundjid) and presence["type"] == "unavailable":
                break

    # juliet cancels her subscription to mercutio's presence: both=>from here, both=>to there (RFC 6121 §3.3)
    juliet.send_presence(pto=f"mercutio@{EJABBERD}", ptype="unsubscribe")
    await until_subscription(juliet, f"mercutio@{EJABBERD}", "from")
    await until_subscription(mercutio, f"capulet@{PARLOUR}", "to")


async def test_an_unsolicited_subscribed_from_a_remote_user_is_ignored(world: World) -> None:
    """RFC 6121 §3.1.6: 'subscribed' without a pending request changes nothing in the roster."""
    nurse = await world.local("lady")
    tybalt = await world.remote("tybalt")
    tybalt.send_presence(pto=f"lady@{PARLOUR}", ptype="subscribed")
    tybalt.send_message(mto=f"lady@{PARLOUR}", mbody="after the subscribed", mtype="chat")
    await received(nurse, "after the subscribed")  # same link, in order: the presence was handled first
    assert world.parlour.server.stores is not None
    item = await world.parlour.server.stores.roster.item(PARLOUR, "lady", f"tybalt@{EJABBERD}")
    assert item is None or item.subscription == "none"


async def test_offline_messages_are_stored_on_both_sides(world: World) -> None:
    friar = await world.local("friar")
    balthasar = await world.remote("balthasar")
    # balthasar is online, then leaves: ejabberd keeps friar's message for him
    balthasar.disconnect()
    await asyncio.sleep(0.5)
    friar.send_message(mto=f"balthasar@{EJABBERD}", mbody="to ejabberd's storage", mtype="chat")
    # friar leaves: Parlour keeps balthasar's message for him
    await friar.plugin["xep_0199"].ping(jid=PARLOUR, timeout=10)
    friar.disconnect()
    await asyncio.sleep(0.5)
    balthasar = await world.remote("balthasar", "laptop")
    got = await received(balthasar, "to ejabberd's storage")
    assert got["from"].bare == f"friar@{PARLOUR}" and got["delay"]["stamp"] is not None
    balthasar.send_message(mto=f"friar@{PARLOUR}", mbody="to Parlour's storage", mtype="chat")
    assert world.parlour.server.stores is not None
    async with asyncio.timeout(20):
        while not await world.parlour.server.stores.offline.fetch(PARLOUR, "friar"):
            await asyncio.sleep(0.05)
    friar = await world.local("friar", "later", create=False)
    back = await received(friar, "to Parlour's storage")
    assert back["from"].bare == f"balthasar@{EJABBERD}" and back["delay"]["from"] == PARLOUR


async def test_a_dialback_error_from_ejabberd_refuses_that_domain_only(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """XEP-0220 §2.4 with a real ejabberd: Parlour piggybacks a second sender domain of its own
    (its MUC service) on its dialback stream; ejabberd cannot find that domain's server to check the key
    (no DNS records) and answers with a dialback error. Parlour bounces what waited for that domain and
    keeps the stream, which goes on carrying parlour.test's messages."""
    caplog.set_level(logging.INFO, logger="appliance.core.s2s")
    abram = await world.remote("abram")
    sampson = await world.local("sampson")
    sampson.send_message(mto=f"abram@{EJABBERD}", mbody="do you bite your thumb?", mtype="chat")
    await received(abram, "do you bite your thumb?")
    federation = world.parlour.server.federation
    assert federation is not None
    [link] = [c for c in links(world.parlour) if c.outgoing and c.machine.remote == EJABBERD]
    bounces = federation.federation.stats.get("s2s_bounces", 0)
    service = f"conference.{PARLOUR}"
    federation.federation.send(etree.fromstring(
        f"<message xmlns='jabber:client' from='{service}' to='abram@{EJABBERD}'><body>from the rooms</body>"
        "</message>"), service, EJABBERD)
    async with asyncio.timeout(20):
        while federation.federation.stats.get("s2s_bounces", 0) == bounces:
            await asyncio.sleep(0.05)
    # ejabberd 23.01 says remote-server-not-found; what waited for the service went back
    assert f"local='{service}', reason='dialback error: remote-server-not-found'" in caplog.text, caplog.text
    assert (EJABBERD, service) not in link.machine.pairs
    sampson.send_message(mto=f"abram@{EJABBERD}", mbody="I do bite my thumb, sir", mtype="chat")
    await received(abram, "I do bite my thumb, sir")  # on the same stream, still open
    assert not link.closed and link.stanzas_out >= 2


async def test_sasl_external_with_certificates_from_a_shared_ca(world: World) -> None:
    mine = world.ca.issue(VERIFIED, client_auth=True)
    verified = await parlour_facing(world.ns, world.base / "verified", VERIFIED, port=VERIFIED_PORT,
                                    tls=TlsConfig(certificate=mine.cert, private_key=mine.key),
                                    ca_bundle=world.ca.pem, require_valid_certificates=True)
    try:
        jid = await verified.user("rosaline")
        rosaline = Client(f"{jid}/test", "correct horse", world.ca.pem)
        world.clients.append(rosaline)
        rosaline.connect(host="127.0.0.1", port=verified.port)
        await asyncio.wait_for(rosaline.started.wait(), 15)
        rosaline.send_presence()
        abram = await world.remote("abram")
        rosaline.send_message(mto=f"abram@{EJABBERD}", mbody="certified", mtype="chat")
        await received(abram, "certified")
        abram.send_message(mto=jid, mbody="verified", mtype="chat")
        await received(rosaline, "verified")
        await rosaline.plugin["xep_0199"].ping(jid=EJABBERD, timeout=10)
        # Parlour -> ejabberd: SASL EXTERNAL, ejabberd checked the certificate against the shared CA
        [out] = [link for link in links(verified) if link.outgoing]
        assert out.secure_method == "external" and out.certificate_valid
        assert out.tls_version in ("TLSv1.2", "TLSv1.3")
        assert f"Accepted inbound s2s EXTERNAL authentication {VERIFIED} -> {EJABBERD}" in world.ejabberd.log()
        # ejabberd -> Parlour: SASL EXTERNAL too (ejabberd's authzid is its domain, base64 with padding)
        incoming = [link for link in links(verified) if not link.outgoing]
        assert incoming and all(link.secure_method == "external" and link.certificate_valid for link in incoming)
    finally:
        await verified.close()
