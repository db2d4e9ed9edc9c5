"""Everything local stanzas do, remote JIDs do too: two real Parlours, capulet.test and montague.test,
with real slixmpp clients on both. A remote user in a local room and the reverse, PEP notifications to a
remote contact, a remote PubSub subscriber, carbons and MAM of a conversation with a remote user,
vCard/last activity/version/disco queries to remote JIDs, blocking a remote JID, and the remote server's
IQ errors coming back to the local sender. One pair of servers serves the module; each test has its own
accounts and rooms."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from slixmpp import JID

from appliance.modules.caps import Capabilities
from appliance.storage.api import RosterItem
from appliance.xmpp.jid import JID as ParlourJID
from tests.integration.cross_server import archived, carbons_across, disconnect_all, rooms_across
from tests.integration.federated import parlour_pair
from tests.integration.harness import Harness
from tests.integration.pubsub_helpers import caps_client, items_of, next_event, on_node, payload
from tests.integration.stanzas import condition, iq, iq_error, raw_messages
from tests.integration.test_muc import muc_client

pytestmark = pytest.mark.asyncio(loop_scope="module")

CAPULET, MONTAGUE = "capulet.test", "montague.test"
NICK, AVATAR_METADATA = "http://jabber.org/protocol/nick", "urn:xmpp:avatar:metadata"


async def befriend_across(one: Harness, first: str, other: Harness, second: str) -> None:
    """A mutual presence subscription between users of the two servers, straight in both roster stores
    (what the handshake of test_federation_ejabberd leaves behind)."""
    for h, user, contact in ((one, first, second), (other, second, first)):
        assert h.server.stores is not None
        local = JID(user).user
        await h.server.stores.roster.put(h.domain, local, RosterItem(contact, subscription="both"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Harness, Harness]]:
    async with parlour_pair(tmp_path_factory.mktemp("federated"), CAPULET, MONTAGUE, queue_timeout=10.0) as pair:
        yield pair


@pytest_asyncio.fixture(loop_scope="module")
async def pair(shared: tuple[Harness, Harness]) -> AsyncIterator[tuple[Harness, Harness]]:
    try:
        yield shared
    finally:
        for h in shared:
            disconnect_all(h.clients)


async def test_a_remote_user_in_a_local_room_and_a_local_user_in_a_remote_room(pair: tuple[Harness, Harness]) -> None:
    capulet, montague = pair
    juliet, nurse = await muc_client(capulet, "juliet"), await muc_client(capulet, "nurse")
    romeo = await muc_client(montague, "romeo")
    await rooms_across(juliet, nurse, romeo, f"balcony@conference.{CAPULET}", f"market@conference.{MONTAGUE}")


async def test_pep_notifications_reach_a_remote_contact_with_notify(pair: tuple[Harness, Harness]) -> None:
    capulet, montague = pair
    juliet_jid, romeo_jid = await capulet.user("juliet2"), await montague.user("romeo2")
    await befriend_across(capulet, juliet_jid, montague, romeo_jid)
    juliet = await capulet.client(juliet_jid)
    for plugin in ("xep_0004", "xep_0060"):
        juliet.register_plugin(plugin)
    ps = juliet.plugin["xep_0060"]
    await ps.publish(juliet_jid, NICK, payload=payload(f"<nick xmlns='{NICK}'>Jules</nick>"))

    # romeo comes online asking for nicks and avatars: capulet learns his caps from the presence
    # montague sends juliet (asking his client over s2s) and sends him juliet's last nick (XEP-0163 §4.3.2)
    romeo = await caps_client(montague, romeo_jid, interests=(NICK, AVATAR_METADATA))
    event = await next_event(romeo, on_node(NICK), timeout=15)
    assert [item[0].text for item in items_of(event, NICK)] == ["Jules"]
    caps = capulet.server.hosts[CAPULET].services[Capabilities]
    assert caps.remote_wanting(ParlourJID.parse(romeo_jid), NICK)

    metadata = (f"<metadata xmlns='{AVATAR_METADATA}'><info bytes='3' id='abc' type='image/png'/></metadata>")
    await ps.publish(juliet_jid, AVATAR_METADATA, id="abc", payload=payload(metadata))
    event = await next_event(romeo, on_node(AVATAR_METADATA), timeout=15)
    assert items_of(event, AVATAR_METADATA)[0].get("id") == "abc"

    # a status change is not news: no last items again, only what juliet publishes next
    romeo.send_presence(pshow="away")
    while (await juliet.next_presence(15))["show"] != "away":
        pass
    await ps.publish(juliet_jid, NICK, payload=payload(f"<nick xmlns='{NICK}'>Juliet</nick>"))
    event = await next_event(romeo, on_node(NICK), timeout=15)
    assert [item[0].text for item in items_of(event, NICK)] == ["Juliet"]


async def test_a_remote_user_subscribes_to_a_pubsub_node(pair: tuple[Harness, Harness]) -> None:
    capulet, montague = pair
    owner = await capulet.client(await capulet.user("friar"))
    reader = await montague.client(await montague.user("balthasar"))
    for client in (owner, reader):
        client.register_plugin("xep_0004")
        client.register_plugin("xep_0060")
    events = raw_messages(reader)
    service = f"pubsub.{CAPULET}"
    await owner.plugin["xep_0060"].create_node(service, "letters")
    await reader.plugin["xep_0060"].subscribe(service, "letters", timeout=15)
    await owner.plugin["xep_0060"].publish(service, "letters", id="l1",
                                           payload=payload("<letter xmlns='urn:example:letters'>Potion</letter>"))
    async with asyncio.timeout(15):
        while (item := (await events.get()).find(".//{http://jabber.org/protocol/pubsub#event}item")) is None:
            pass
    assert item.get("id") == "l1" and item.findtext("{urn:example:letters}letter") == "Potion"


async def test_carbons_and_mam_cover_a_conversation_with_a_remote_user(pair: tuple[Harness, Harness]) -> None:
    capulet, montague = pair
    juliet_jid, romeo_jid = await capulet.user("juliet3"), await montague.user("romeo3")
    phone = await capulet.client(juliet_jid, resource="phone")
    laptop = await capulet.client(juliet_jid, resource="laptop")
    romeo = await montague.client(romeo_jid)
    await carbons_across(phone, laptop, romeo)
    # romeo's own server archived the conversation too
    assert await archived(romeo, juliet_jid) == ["sent from the phone", "to the phone only"]


async def test_vcard_last_activity_version_and_disco_of_remote_jids(pair: tuple[Harness, Harness]) -> None:
    capulet, montague = pair
    juliet_jid, romeo_jid = await capulet.user("juliet4"), await montague.user("romeo4")
    await befriend_across(capulet, juliet_jid, montague, romeo_jid)  # last activity needs a subscription
    romeo = await montague.client(romeo_jid)
    await iq(romeo, "set", "<vCard xmlns='vcard-temp'><FN>Romeo Montague</FN></vCard>")
    romeo.disconnect()
    juliet = await capulet.client(juliet_jid)
    card = await iq(juliet, "get", "<vCard xmlns='vcard-temp'/>", to=romeo_jid)
    assert card.findtext("{vcard-temp}vCard/{vcard-temp}FN") == "Romeo Montague"
    last = await iq(juliet, "get", "<query xmlns='jabber:iq:last'/>", to=romeo_jid)
    assert int(last.find("{jabber:iq:last}query").get("seconds")) >= 0
    version = await iq(juliet, "get", "<query xmlns='jabber:iq:version'/>", to=MONTAGUE)
    assert version.findtext("{jabber:iq:version}query/{jabber:iq:version}name")
    info = await juliet.plugin["xep_0030"].get_info(jid=MONTAGUE, timeout=15)
    assert "urn:xmpp:ping" in info["disco_info"]["features"]
    items = await juliet.plugin["xep_0030"].get_items(jid=MONTAGUE, timeout=15)
    assert f"conference.{MONTAGUE}" in {str(item[0]) for item in items["disco_items"]["items"]}


async def test_blocking_a_remote_jid_works_both_ways(pair: tuple[Harness, Harness]) -> None:
    capulet, montague = pair
    juliet_jid, romeo_jid = await capulet.user("juliet5"), await montague.user("romeo5")
    juliet = await capulet.client(juliet_jid)
    romeo = await montague.client(romeo_jid)
    juliet.register_plugin("xep_0191")
    await juliet.plugin["xep_0191"].block(romeo_jid)
    romeo.send_message(mto=juliet_jid, mbody="let me in", mtype="chat")
    error = await romeo.next_message(15)  # XEP-0191 §3.2: not delivered, the sender gets an error
    assert error["type"] == "error" and error["error"]["condition"] == "service-unavailable"
    juliet.send_message(mto=romeo_jid, mbody="to a blocked contact", mtype="chat")
    own = await juliet.next_message(5)  # §3.2: juliet's own server refuses it, naming the block
    assert own["type"] == "error" and own["error"]["condition"] == "not-acceptable"
    assert own.xml.find(".//{urn:xmpp:blocking:errors}blocked") is not None
    await juliet.plugin["xep_0191"].unblock(romeo_jid)
    romeo.send_message(mto=juliet_jid, mbody="again", mtype="chat")
    assert (await juliet.next_message(15))["body"] == "again"


async def test_iq_errors_of_the_remote_server_come_back_to_the_sender(pair: tuple[Harness, Harness]) -> None:
    capulet, montague = pair
    juliet = await capulet.client(await capulet.user("juliet6"))
    romeo_jid = await montague.user("romeo6")
    unknown = "<query xmlns='urn:example:nothing'/>"
    # RFC 6120 §8.4: the server answers for itself; RFC 6121 §8.5: for accounts and resources that do not exist
    assert condition(await iq_error(juliet, "get", unknown, to=MONTAGUE)) == "service-unavailable"
    assert condition(await iq_error(juliet, "get", unknown, to=f"nobody@{MONTAGUE}")) == "service-unavailable"
    assert condition(await iq_error(juliet, "get", unknown, to=f"{romeo_jid}/gone")) == "service-unavailable"
    error = await iq_error(juliet, "get", "<vCard xmlns='vcard-temp'/>", to=f"nobody@{MONTAGUE}")
    assert condition(error) in ("item-not-found", "service-unavailable")
    assert error.get("type") == "cancel"
