"""What the cross-server tests share, whatever the peer: a Parlour serving one domain in front of a peer's
network namespace, peer clients, and the scenarios every peer plays: rooms both ways, PEP both ways, a
remote PubSub subscription, carbons and MAM, queries of remote JIDs with blocking and IQ errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol
from xml.etree import ElementTree as ET

import pytest
import pytest_asyncio
from slixmpp import JID

from appliance.app import Parlour
from appliance.config.model import FederationConfig, S2SConfig, TlsConfig
from appliance.modules.caps import Capabilities
from appliance.xmpp.jid import JID as ParlourJID
from tests.integration.harness import Client, Harness, make_config
from tests.integration.prosody_peer import FederationCA, Issued, Namespace
from tests.integration.pubsub_helpers import caps_client, items_of, next_event, on_node, payload, watch_events
from tests.integration.stanzas import condition, iq, iq_error, raw_messages
from tests.integration.test_muc import codes, create_room, groupchat, muc_client, presence_from
from tests.net.dnsserver import DnsServer

CARBONS, FORWARD, MAM = "urn:xmpp:carbons:2", "urn:xmpp:forward:0", "urn:xmpp:mam:2"
NICK = "http://jabber.org/protocol/nick"
PARLOUR = "parlour.test"
FEATURE_ACCOUNTS = {name: f"{name}-pw" for name in ("romeo", "benvolio", "mercutio", "tybalt", "balthasar")}


async def parlour_facing(ns: Namespace, base: Path, domain: str, *, port: int = 5269, tls: TlsConfig | None = None,
                         **s2s: object) -> Harness:
    """A started Parlour serving `domain`, its s2s on the namespace's outer address, asking the test's DNS
    server there; `s2s` changes [s2s] (ca_bundle, require_valid_certificates ...). The direct TLS listener
    is off: a second Parlour on the same address takes port 5270."""
    config = S2SConfig(interfaces=(ns.outer,), port=port, direct_tls_port=0, nameservers=(f"{ns.outer}:53",),
                       dns_timeout=2.0, connect_timeout=3.0, auth_timeout=10.0, queue_timeout=15.0)
    cfg = make_config(base)
    cfg = replace(cfg, hosts=(replace(cfg.hosts[0], name=domain),), federation=FederationConfig(enabled=True),
                  s2s=replace(config, **s2s))  # type: ignore[arg-type]
    if tls is not None:
        cfg = replace(cfg, tls=tls)
    server = Parlour(cfg)
    await server.start()
    return Harness(server)


class Peer(Protocol):
    @property
    def address(self) -> str: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


@asynccontextmanager
async def running(parlour: Harness, peer: Peer) -> AsyncIterator[None]:
    """Start `peer` (Parlour is started already); stop both at the end, whatever happens."""
    try:
        await peer.start()
        yield
    finally:
        await parlour.close()
        await peer.stop()


async def peer_client(jid: str, password: str, ca: Path, address: str, clients: list[Client], *,
                      plugins: tuple[str, ...] = (), presence: bool = True) -> Client:
    """A client of a peer server at `address`:5222 (STARTTLS, trusting `ca`), logged in with its roster,
    recorded in `clients` for the end of the test."""
    client = Client(jid, password, ca)
    for plugin in plugins:
        client.register_plugin(plugin)
    clients.append(client)
    client.connect(host=address, port=5222)
    await asyncio.wait_for(client.started.wait(), 15)
    await client.get_roster()
    if presence:
        client.send_presence()
    return client


@dataclass
class FeatureWorld:
    """A Parlour and a peer (`product`) serving `domain` with `accounts`, its MUC on rooms.`domain` and its
    PubSub on pubsub.`domain`: what the feature tests of every peer share."""
    parlour: Harness
    peer: Peer
    ca: Path
    domain: str
    product: str
    accounts: dict[str, str]

    @property
    def rooms(self) -> str:
        return f"rooms.{self.domain}"

    @property
    def pubsub(self) -> str:
        return f"pubsub.{self.domain}"

    async def remote(self, name: str, resource: str = "phone") -> Client:
        """`name`@domain logged in to the peer, with the MUC and PubSub plugins."""
        client = await peer_client(f"{name}@{self.domain}/{resource}", self.accounts[name], self.ca,
                                   self.peer.address, self.parlour.clients,
                                   plugins=("xep_0004", "xep_0045", "xep_0060", "xep_0115", "xep_0163"))
        client.add_event_handler("groupchat_presence", client.presences.put_nowait)
        return client


class ServicePeer(Protocol):
    """How ProsodyPeer and EjabberdPeer are built."""

    def __call__(self, base: Path, ns: Namespace, domain: str, *, certificate: Issued, cafile: Path,
                 users: dict[str, str], services: bool) -> Peer: ...


@asynccontextmanager
async def feature_world(base: Path, index: int, domain: str, product: str,
                        make_peer: ServicePeer) -> AsyncIterator[FeatureWorld]:
    """Parlour on parlour.test and a `make_peer` (in namespace `index`, with a certificate from a test CA)
    serving `domain` with FEATURE_ACCOUNTS and its rooms and PubSub services; both find each other through
    a DNS server of the test."""
    ca = FederationCA(base / "ca")
    rooms, pubsub = f"rooms.{domain}", f"pubsub.{domain}"
    with Namespace(index=index) as ns:
        zone = {
            (f"_xmpp-server._tcp.{domain}.", "SRV"): [f"0 5 5269 {domain}."],
            **{(f"{name}.", "A"): [ns.inner] for name in (domain, rooms, pubsub)},
            **{(f"{name}.", "A"): [ns.outer] for name in (PARLOUR, f"conference.{PARLOUR}", f"pubsub.{PARLOUR}")},
        }
        async with DnsServer(zone, host=ns.outer, port=53):
            peer = make_peer(base / "peer", ns, domain, certificate=ca.issue(domain), cafile=ca.pem,
                             users=FEATURE_ACCOUNTS, services=True)
            parlour = await parlour_facing(ns, base / "parlour", PARLOUR)
            async with running(parlour, peer):
                yield FeatureWorld(parlour, peer, ca.pem, domain, product, FEATURE_ACCOUNTS)


class CrossServerFeatures:
    """The feature tests every peer passes, against one peer per module: a test module subclasses this as
    Test<Peer>, saying the peer's domain, its product name, its namespace index and its class."""

    pytestmark = [pytest.mark.asyncio(loop_scope="module")]  # the world is the module's: so is the loop
    domain: str
    product: str
    namespace: int
    peer: ServicePeer

    @pytest_asyncio.fixture(scope="module", loop_scope="module")
    @classmethod
    async def shared(cls, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FeatureWorld]:
        base = tmp_path_factory.mktemp(f"{cls.product}-features")
        async with feature_world(base, cls.namespace, cls.domain, cls.product, cls.peer) as world:
            yield world

    @pytest_asyncio.fixture(loop_scope="module")
    async def world(self, shared: FeatureWorld) -> AsyncIterator[FeatureWorld]:
        try:
            yield shared
        finally:
            disconnect_all(shared.parlour.clients)

    async def test_rooms_across_servers(self, world: FeatureWorld) -> None:
        parlour = world.parlour
        juliet, nurse = await muc_client(parlour, "juliet"), await muc_client(parlour, "nurse")
        romeo = await world.remote("romeo")
        await rooms_across(juliet, nurse, romeo, f"balcony@conference.{PARLOUR}", f"market@{world.rooms}")

    async def test_pep_notifications_both_ways(self, world: FeatureWorld) -> None:
        await pep_both_ways(world.parlour, "juliet2", await world.remote("benvolio"))

    async def test_a_parlour_user_subscribes_to_a_remote_pubsub_node(self, world: FeatureWorld) -> None:
        await remote_node_subscription(world.parlour, "friar", await world.remote("mercutio"), world.pubsub)

    async def test_carbons_and_mam_of_a_conversation_with_a_remote_user(self, world: FeatureWorld) -> None:
        parlour = world.parlour
        juliet_jid = await parlour.user("juliet3")
        phone = await parlour.client(juliet_jid, resource="phone")
        laptop = await parlour.client(juliet_jid, resource="laptop")
        await carbons_across(phone, laptop, await world.remote("tybalt"))

    async def test_queries_blocking_and_errors_with_remote_jids(self, world: FeatureWorld) -> None:
        await queries_blocking_and_errors(world.parlour, "juliet4", await world.remote("balthasar"),
                                          product=world.product, services={world.rooms, world.pubsub})


def disconnect_all(clients: list[Client]) -> None:
    """End a test's client sessions on a server the module shares, and forget them."""
    for client in clients:
        if client.is_connected():
            client.disconnect()
    clients.clear()


async def rooms_across(juliet: Client, nurse: Client, romeo: Client, room: str, other: str) -> None:
    """juliet (owner) and nurse in `room` on their server, romeo from the other server: occupants, history,
    messages, a kick seen by all; then romeo's `other` on his server, joined by juliet, and kicked there."""
    await create_room(juliet, room, "Juliet")
    juliet.send_message(mto=room, mbody="before romeo came", mtype="groupchat")
    await groupchat(juliet, body="before romeo came")
    own, _subject, occupants, history = await romeo.plugin["xep_0045"].join_muc_wait(JID(room), "Romeo",
                                                                                     maxstanzas=5, timeout=20)
    assert 110 in codes(own) and own["muc"]["role"] == "participant"
    assert {str(p["from"]) for p in occupants} == {f"{room}/Juliet", f"{room}/Romeo"}
    assert [m["body"] for m in history] == ["before romeo came"]
    assert history[0]["delay"]["stamp"] is not None
    seen = await presence_from(juliet, f"{room}/Romeo", timeout=10)
    assert seen["muc"]["jid"].bare == romeo.boundjid.bare  # the owner sees his real JID
    romeo.send_message(mto=room, mbody="from afar", mtype="groupchat")
    assert (await groupchat(juliet, body="from afar", timeout=10))["from"] == JID(f"{room}/Romeo")
    juliet.send_message(mto=room, mbody="from home", mtype="groupchat")
    await groupchat(romeo, body="from home", timeout=10)
    await nurse.plugin["xep_0045"].join_muc_wait(JID(room), "Nurse", maxstanzas=0, timeout=10)
    await juliet.plugin["xep_0045"].set_role(room, "Romeo", "none", reason="banished")
    kicked = await presence_from(romeo, f"{room}/Romeo", ptype="unavailable", timeout=15)
    assert {110, 307} <= codes(kicked)
    assert 307 in codes(await presence_from(nurse, f"{room}/Romeo", ptype="unavailable"))

    await create_room(romeo, other, "Romeo")
    romeo.send_message(mto=other, mbody="remote history", mtype="groupchat")
    await groupchat(romeo, body="remote history", timeout=10)
    own, _subject, occupants, history = await juliet.plugin["xep_0045"].join_muc_wait(JID(other), "Juliet",
                                                                                       maxstanzas=5, timeout=20)
    assert 110 in codes(own) and {str(p["from"]) for p in occupants} == {f"{other}/Romeo", f"{other}/Juliet"}
    assert [m["body"] for m in history] == ["remote history"]
    juliet.send_message(mto=other, mbody="visiting", mtype="groupchat")
    assert (await groupchat(romeo, body="visiting", timeout=10))["from"] == JID(f"{other}/Juliet")
    await romeo.plugin["xep_0045"].set_role(other, "Juliet", "none", reason="out")
    assert 307 in codes(await presence_from(juliet, f"{other}/Juliet", ptype="unavailable", timeout=15))


async def carbons_across(phone: Client, laptop: Client, romeo: Client) -> None:
    """phone and laptop are one account with carbons on, romeo on the other server: copies of what phone
    sends him and of what he sends phone reach laptop, and phone's archive holds both."""
    for client in (phone, laptop):
        await iq(client, "set", f"<enable xmlns='{CARBONS}'/>")
    copies = raw_messages(laptop)
    peer = romeo.boundjid.bare
    phone.send_message(mto=peer, mbody="sent from the phone", mtype="chat")
    assert (await romeo.next_message(15))["body"] == "sent from the phone"
    assert (await carbon(copies, "sent")).get("to") == peer
    romeo.send_message(mto=phone.boundjid.full, mbody="to the phone only", mtype="chat")
    assert (await phone.next_message(15))["body"] == "to the phone only"
    assert JID((await carbon(copies, "received")).get("from")).bare == peer
    assert await archived(phone, peer) == ["sent from the phone", "to the phone only"]


async def carbon(queue: asyncio.Queue[ET.Element], kind: str) -> ET.Element:
    """The message inside the next `kind` ("sent" or "received") carbon."""
    async with asyncio.timeout(15):
        while True:
            holder = (await queue.get()).find(f"{{{CARBONS}}}{kind}")
            if holder is not None:
                forwarded = holder.find(f"{{{FORWARD}}}forwarded/{{jabber:client}}message")
                assert forwarded is not None
                return forwarded


async def archived(client: Client, peer: str) -> list[str]:
    """The bodies of `client`'s archive (MAM) with `peer`, oldest first."""
    results = raw_messages(client)
    fields = (f"<field var='FORM_TYPE' type='hidden'><value>{MAM}</value></field>"
              f"<field var='with'><value>{peer}</value></field>")
    await iq(client, "set", f"<query xmlns='{MAM}' queryid='q'><x xmlns='jabber:x:data' type='submit'>"
                            f"{fields}</x></query>")
    bodies = []
    while not results.empty():
        result = results.get_nowait().find(f"{{{MAM}}}result")
        if result is not None:
            bodies.append(result.findtext(f"{{{FORWARD}}}forwarded/{{jabber:client}}message/{{jabber:client}}body"))
    return bodies


async def subscribed_both_ways(juliet: Client, romeo: Client) -> None:
    """The subscription handshake through the clients (slixmpp approves and subscribes back)."""
    juliet.send_presence(pto=romeo.boundjid.bare, ptype="subscribe")
    async with asyncio.timeout(20):
        while True:
            await juliet.get_roster()
            await romeo.get_roster()
            if (juliet.client_roster[romeo.boundjid.bare]["subscription"] == "both"
                    and romeo.client_roster[juliet.boundjid.bare]["subscription"] == "both"):
                return
            await asyncio.sleep(0.2)


async def pep_both_ways(parlour: Harness, juliet_name: str, romeo: Client) -> None:
    """`juliet_name` on Parlour and romeo on the peer, subscribed both ways: each sees the other's nick
    (PEP, XEP-0163) because their clients say nick+notify in their caps."""
    juliet_jid = await parlour.user(juliet_name)
    juliet = await caps_client(parlour, juliet_jid, interests=(NICK,))
    watch_events(romeo)
    await subscribed_both_ways(juliet, romeo)
    juliet.send_presence()  # caps again, now that the peer may route them to romeo's account
    # the peer asks juliet's client for the features behind her caps hash before it notifies her: a
    # publication made before the answer reaches nobody, so publish again until one arrives
    for _ in range(4):
        await romeo.plugin["xep_0060"].publish(romeo.boundjid.bare, NICK, id="current",
                                               payload=payload(f"<nick xmlns='{NICK}'>Ben</nick>"))
        try:
            event = await next_event(juliet, on_node(NICK), timeout=4)
        except TimeoutError:
            continue
        assert items_of(event, NICK)[0][0].text == "Ben"
        break
    else:
        raise AssertionError("no PEP notification from the peer reached juliet")

    # the other way: romeo's client asks for nicks; Parlour learns it from his presence (asking his
    # client over s2s) and notifies him of juliet's
    romeo.plugin["xep_0030"].add_feature(f"{NICK}+notify")
    await romeo.plugin["xep_0115"].update_caps()
    caps = parlour.server.hosts[parlour.domain].services[Capabilities]
    async with asyncio.timeout(15):
        while not caps.remote_wanting(ParlourJID.parse(romeo.boundjid.bare), NICK):
            await asyncio.sleep(0.05)
    await juliet.plugin["xep_0060"].publish(juliet_jid, NICK, payload=payload(f"<nick xmlns='{NICK}'>Jules</nick>"))
    # (his own nick may come back to him from his server too: only juliet's is looked for)
    event = await next_event(romeo, lambda e: [i[0].text for i in items_of(e, NICK)] == ["Jules"], timeout=15)
    assert items_of(event, NICK)[0].get("id")


async def remote_node_subscription(parlour: Harness, reader_name: str, owner: Client, service: str) -> None:
    """`reader_name` on Parlour subscribes to a node owner creates on the peer's PubSub `service` and gets
    the item owner publishes."""
    reader = await parlour.client(await parlour.user(reader_name))
    for plugin in ("xep_0004", "xep_0060"):
        reader.register_plugin(plugin)
    watch_events(reader)
    await owner.plugin["xep_0060"].create_node(service, "letters")
    await reader.plugin["xep_0060"].subscribe(service, "letters", timeout=15)
    await owner.plugin["xep_0060"].publish(service, "letters", id="l1",
                                           payload=payload("<letter xmlns='urn:example:letters'>Potion</letter>"))
    event = await next_event(reader, on_node("letters"), timeout=15)
    [item] = items_of(event, "letters")
    assert item.get("id") == "l1" and item.findtext("{urn:example:letters}letter") == "Potion"


async def queries_blocking_and_errors(parlour: Harness, juliet_name: str, balthasar: Client, *, product: str,
                                      services: set[str]) -> None:
    """`juliet_name` on Parlour asks for balthasar's vCard and his server's version (`product`), uptime and
    disco (`services` among its items), gets the peer's IQ errors, then blocks and unblocks balthasar."""
    domain = balthasar.boundjid.domain
    await iq(balthasar, "set", "<vCard xmlns='vcard-temp'><FN>Balthasar</FN></vCard>")
    juliet_jid = await parlour.user(juliet_name)
    juliet = await parlour.client(juliet_jid)
    card = await iq(juliet, "get", "<vCard xmlns='vcard-temp'/>", to=balthasar.boundjid.bare)
    assert card.findtext("{vcard-temp}vCard/{vcard-temp}FN") == "Balthasar"
    version = await iq(juliet, "get", "<query xmlns='jabber:iq:version'/>", to=domain)
    assert version.findtext("{jabber:iq:version}query/{jabber:iq:version}name") == product
    uptime = await iq(juliet, "get", "<query xmlns='jabber:iq:last'/>", to=domain)
    assert int(uptime.find("{jabber:iq:last}query").get("seconds")) >= 0
    info = await juliet.plugin["xep_0030"].get_info(jid=domain, timeout=15)
    assert "urn:xmpp:blocking" in info["disco_info"]["features"]
    items = await juliet.plugin["xep_0030"].get_items(jid=domain, timeout=15)
    assert services <= {str(item[0]) for item in items["disco_items"]["items"]}

    # the peer's errors come back to the sender
    unknown = "<query xmlns='urn:example:nothing'/>"
    assert condition(await iq_error(juliet, "get", unknown, to=domain)) == "service-unavailable"
    assert condition(await iq_error(juliet, "get", unknown, to=f"nobody@{domain}")) == "service-unavailable"
    assert condition(await iq_error(juliet, "get", unknown, to=f"{balthasar.boundjid.bare}/gone")) == (
        "service-unavailable")

    # blocking balthasar: his messages are refused, hers to him too
    juliet.register_plugin("xep_0191")
    await juliet.plugin["xep_0191"].block(balthasar.boundjid.bare)
    balthasar.send_message(mto=juliet_jid, mbody="let me in", mtype="chat")
    error = await balthasar.next_message(15)
    assert error["type"] == "error" and error["error"]["condition"] == "service-unavailable"
    juliet.send_message(mto=balthasar.boundjid.bare, mbody="to a blocked contact", mtype="chat")
    assert (await juliet.next_message(5))["error"]["condition"] == "not-acceptable"
    await juliet.plugin["xep_0191"].unblock(balthasar.boundjid.bare)
    balthasar.send_message(mto=juliet_jid, mbody="again", mtype="chat")
    assert (await juliet.next_message(15))["body"] == "again"
