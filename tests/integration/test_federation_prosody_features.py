"""Cross-server features with a real Prosody: juliet@parlour.test on Parlour, romeo@prosody.test on Prosody
(with its MUC on rooms.prosody.test and PubSub on pubsub.prosody.test), in a network namespace with its
own DNS view as in test_federation_prosody. One Prosody and one Parlour serve the module; each test has
its own accounts. Covered: a Prosody user in a Parlour room and a Parlour user in a Prosody room
(occupants, history, messages, kick), PEP from a Prosody user to a Parlour contact with +notify, a
Parlour user subscribed to a Prosody PubSub node, carbons and MAM of a conversation with a Prosody user,
vCard/last activity/version/disco of Prosody JIDs, blocking a Prosody JID, and Prosody's IQ errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from appliance.modules.caps import Capabilities
from appliance.xmpp.jid import JID as ParlourJID
from tests.integration.cross_server import (
    carbons_across,
    disconnect_all,
    parlour_facing,
    peer_client,
    rooms_across,
    running,
)
from tests.integration.harness import Client, Harness
from tests.integration.prosody_peer import FederationCA, Namespace, ProsodyPeer, unavailable
from tests.integration.pubsub_helpers import caps_client, items_of, next_event, on_node, payload, watch_events
from tests.integration.stanzas import condition, iq, iq_error
from tests.integration.test_muc import muc_client
from tests.net.dnsserver import DnsServer

REASON = unavailable()
pytestmark = [pytest.mark.skipif(REASON is not None, reason=f"Prosody federation tests: {REASON}"),
              pytest.mark.asyncio(loop_scope="module")]

PARLOUR, PROSODY = "parlour.test", "prosody.test"
ROOMS, PUBSUB = f"rooms.{PROSODY}", f"pubsub.{PROSODY}"
ACCOUNTS = {name: f"{name}-pw" for name in ("romeo", "benvolio", "mercutio", "tybalt", "balthasar", "abram")}
NICK = "http://jabber.org/protocol/nick"


@dataclass
class World:
    parlour: Harness
    prosody: ProsodyPeer
    ca: FederationCA

    async def remote(self, name: str, resource: str = "phone") -> Client:
        """`name`@prosody.test logged in to Prosody, with the MUC and PubSub plugins."""
        client = await peer_client(f"{name}@{PROSODY}/{resource}", ACCOUNTS[name], self.ca.pem,
                                   self.prosody.address, self.parlour.clients,
                                   plugins=("xep_0004", "xep_0045", "xep_0060", "xep_0115", "xep_0163"))
        client.add_event_handler("groupchat_presence", client.presences.put_nowait)
        return client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    base = tmp_path_factory.mktemp("prosody-features")
    ca = FederationCA(base / "ca")
    with Namespace(index=2) as ns:
        zone = {
            (f"_xmpp-server._tcp.{PROSODY}.", "SRV"): [f"0 5 5269 {PROSODY}."],
            **{(f"{name}.", "A"): [ns.inner] for name in (PROSODY, ROOMS, PUBSUB)},
            **{(f"{name}.", "A"): [ns.outer] for name in (PARLOUR, f"conference.{PARLOUR}", f"pubsub.{PARLOUR}")},
        }
        async with DnsServer(zone, host=ns.outer, port=53):
            prosody = ProsodyPeer(base / "prosody", ns, PROSODY, certificate=ca.issue(PROSODY), cafile=ca.pem,
                                  users=ACCOUNTS, services=True)
            parlour = await parlour_facing(ns, base / "parlour", PARLOUR)
            async with running(parlour, prosody):
                yield World(parlour, prosody, ca)


@pytest_asyncio.fixture(loop_scope="module")
async def world(shared: World) -> AsyncIterator[World]:
    try:
        yield shared
    finally:
        disconnect_all(shared.parlour.clients)


async def test_rooms_across_servers(world: World) -> None:
    parlour = world.parlour
    juliet, nurse = await muc_client(parlour, "juliet"), await muc_client(parlour, "nurse")
    romeo = await world.remote("romeo")
    await rooms_across(juliet, nurse, romeo, f"balcony@conference.{PARLOUR}", f"market@{ROOMS}")


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


async def test_pep_notifications_both_ways_with_prosody(world: World) -> None:
    parlour = world.parlour
    juliet_jid = await parlour.user("juliet2")
    juliet = await caps_client(parlour, juliet_jid, interests=(NICK,))
    romeo = await world.remote("benvolio")
    watch_events(romeo)
    await subscribed_both_ways(juliet, romeo)
    juliet.send_presence()  # caps again, now that Prosody may route them to benvolio's server
    # Prosody asks juliet's client for the features behind her caps hash before it notifies her: a
    # publication made before the answer reaches nobody, so publish again until one arrives
    for _ in range(4):
        await romeo.plugin["xep_0060"].publish(f"benvolio@{PROSODY}", NICK, id="current",
                                               payload=payload(f"<nick xmlns='{NICK}'>Ben</nick>"))
        try:
            event = await next_event(juliet, on_node(NICK), timeout=4)
        except TimeoutError:
            continue
        assert items_of(event, NICK)[0][0].text == "Ben"
        break
    else:
        raise AssertionError("no PEP notification from Prosody reached juliet")

    # the other way: benvolio's client asks for nicks; Parlour learns it from his presence (asking his
    # client over s2s) and notifies him of juliet's
    romeo.plugin["xep_0030"].add_feature(f"{NICK}+notify")
    await romeo.plugin["xep_0115"].update_caps()
    caps = parlour.server.hosts[PARLOUR].services[Capabilities]
    async with asyncio.timeout(15):
        while not caps.remote_wanting(ParlourJID.parse(f"benvolio@{PROSODY}"), NICK):
            await asyncio.sleep(0.05)
    await juliet.plugin["xep_0060"].publish(juliet_jid, NICK, payload=payload(f"<nick xmlns='{NICK}'>Jules</nick>"))
    # (his own nick comes back to him from Prosody too: only juliet's is looked for)
    event = await next_event(romeo, lambda e: [i[0].text for i in items_of(e, NICK)] == ["Jules"], timeout=15)
    assert items_of(event, NICK)[0].get("id")


async def test_a_parlour_user_subscribes_to_a_prosody_pubsub_node(world: World) -> None:
    parlour = world.parlour
    reader = await parlour.client(await parlour.user("friar"))
    for plugin in ("xep_0004", "xep_0060"):
        reader.register_plugin(plugin)
    watch_events(reader)
    owner = await world.remote("mercutio")
    await owner.plugin["xep_0060"].create_node(PUBSUB, "letters")
    await reader.plugin["xep_0060"].subscribe(PUBSUB, "letters", timeout=15)
    await owner.plugin["xep_0060"].publish(PUBSUB, "letters", id="l1",
                                           payload=payload("<letter xmlns='urn:example:letters'>Potion</letter>"))
    event = await next_event(reader, on_node("letters"), timeout=15)
    [item] = items_of(event, "letters")
    assert item.get("id") == "l1" and item.findtext("{urn:example:letters}letter") == "Potion"


async def test_carbons_and_mam_of_a_conversation_with_a_prosody_user(world: World) -> None:
    parlour = world.parlour
    juliet_jid = await parlour.user("juliet3")
    phone = await parlour.client(juliet_jid, resource="phone")
    laptop = await parlour.client(juliet_jid, resource="laptop")
    await carbons_across(phone, laptop, await world.remote("tybalt"))


async def test_queries_blocking_and_errors_with_prosody_jids(world: World) -> None:
    parlour = world.parlour
    balthasar = await world.remote("balthasar")
    await iq(balthasar, "set", "<vCard xmlns='vcard-temp'><FN>Balthasar</FN></vCard>")
    juliet_jid = await parlour.user("juliet4")
    juliet = await parlour.client(juliet_jid)
    card = await iq(juliet, "get", "<vCard xmlns='vcard-temp'/>", to=f"balthasar@{PROSODY}")
    assert card.findtext("{vcard-temp}vCard/{vcard-temp}FN") == "Balthasar"
    version = await iq(juliet, "get", "<query xmlns='jabber:iq:version'/>", to=PROSODY)
    assert version.findtext("{jabber:iq:version}query/{jabber:iq:version}name") == "Prosody"
    uptime = await iq(juliet, "get", "<query xmlns='jabber:iq:last'/>", to=PROSODY)
    assert int(uptime.find("{jabber:iq:last}query").get("seconds")) >= 0
    info = await juliet.plugin["xep_0030"].get_info(jid=PROSODY, timeout=15)
    assert "urn:xmpp:blocking" in info["disco_info"]["features"]
    items = await juliet.plugin["xep_0030"].get_items(jid=PROSODY, timeout=15)
    assert {ROOMS, PUBSUB} <= {str(item[0]) for item in items["disco_items"]["items"]}

    # Prosody's errors come back to the sender
    unknown = "<query xmlns='urn:example:nothing'/>"
    assert condition(await iq_error(juliet, "get", unknown, to=PROSODY)) == "service-unavailable"
    assert condition(await iq_error(juliet, "get", unknown, to=f"nobody@{PROSODY}")) == "service-unavailable"
    assert condition(await iq_error(juliet, "get", unknown, to=f"balthasar@{PROSODY}/gone")) == "service-unavailable"

    # blocking balthasar: his messages are refused, hers to him too
    juliet.register_plugin("xep_0191")
    await juliet.plugin["xep_0191"].block(f"balthasar@{PROSODY}")
    balthasar.send_message(mto=juliet_jid, mbody="let me in", mtype="chat")
    error = await balthasar.next_message(15)
    assert error["type"] == "error" and error["error"]["condition"] == "service-unavailable"
    juliet.send_message(mto=f"balthasar@{PROSODY}", mbody="to a blocked contact", mtype="chat")
    assert (await juliet.next_message(5))["error"]["condition"] == "not-acceptable"
    await juliet.plugin["xep_0191"].unblock(f"balthasar@{PROSODY}")
    balthasar.send_message(mto=juliet_jid, mbody="again", mtype="chat")
    assert (await juliet.next_message(15))["body"] == "again"
