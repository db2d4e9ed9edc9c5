"""Three Parlour nodes on one real PostgreSQL and one real Redis: PEP and PubSub notifications reach contacts
on other nodes (filtered by the NODE+notify of caps that another node learnt)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import pytest_asyncio
from slixmpp.xmlstream.handler import Callback, CoroutineCallback
from slixmpp.xmlstream.matcher import MatchXPath, StanzaPath

from appliance.storage.api import RosterItem
from tests.integration.cluster_nodes import DOMAIN, Cluster, ping, running_cluster
from tests.integration.harness import Client
from tests.integration.pubsub_helpers import announce_caps, items_of, next_event, no_event, on_node, payload
from tests.integration.stanzas import iq, raw_messages
from tests.integration.test_stream_management import Phone, send_numbered, until
from tests.pgserver import PostgresServer
from tests.redisserver import RedisServer

pytestmark = pytest.mark.asyncio(loop_scope="module")
NODES = ("n1", "n2", "n3")
DEVICELIST = "eu.siacs.conversations.axolotl.devicelist"
AXOLOTL = "eu.siacs.conversations.axolotl"
PROPAGATION = 0.5  # seconds for a registry change to reach the other nodes (the existing tests wait 0.3)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer,
                  redis_server: RedisServer) -> AsyncIterator[Cluster]:
    """The nodes on the session's PostgreSQL (a database of their own) and a Redis emptied for them."""
    redis_server.restart(empty=True)
    folder = tmp_path_factory.mktemp("cluster-sync")
    async with running_cluster(folder, postgres.create_database(), redis_server.url, NODES) as running:
        yield running


@pytest_asyncio.fixture(autouse=True, loop_scope="module")
async def _clients_closed(cluster: Cluster) -> AsyncIterator[None]:
    """Each test's clients log out at its end."""
    try:
        yield
    finally:
        cluster.close_clients()


async def befriend(cluster: Cluster, owner: str, *contacts: str) -> None:
    """Mutual subscriptions between `owner` and each contact, written to the shared database."""
    assert cluster.storage is not None
    roster = cluster.storage.stores.roster
    for contact in contacts:
        for user, other in ((owner, contact), (contact, owner)):
            await roster.put(DOMAIN, user.split("@")[0], RosterItem(other, subscription="both"))


async def caps_client(cluster: Cluster, node: str, jid: str, interests: tuple[str, ...] = (),
                      resource: str = "phone") -> Client:
    """A client on `node` announcing entity capabilities with NODE+notify for `interests`."""
    client = await cluster.client(node, jid, resource=resource, presence=False)
    await announce_caps(client, interests)
    await ping(client)
    return client


async def incurious_caps_client(cluster: Cluster, node: str, jid: str, interests: tuple[str, ...] = ()) -> Client:
    """A caps client that never asks its contacts' caps (slixmpp does when their presence comes): it then
    sends no stanza the test did not ask for."""
    client = await cluster.client(node, jid, presence=False)
    client.register_plugin("xep_0115")
    assert client.remove_handler("Entity Capabilities")
    await announce_caps(client, interests)
    await ping(client)
    return client


def devices(event: object) -> list[str]:
    [item] = items_of(event, DEVICELIST)  # type: ignore[arg-type]
    return [d.get("id") or "" for d in item[0]]


async def publish(client: Client, owner: str, *ids: int) -> None:
    listed = "".join(f"<device id='{i}'/>" for i in ids)
    await client.plugin["xep_0060"].publish(owner, DEVICELIST, id="current",
                                            payload=payload(f"<list xmlns='{AXOLOTL}'>{listed}</list>"))


async def test_pep_notifications_reach_contacts_on_other_nodes_by_their_caps(cluster: Cluster) -> None:
    alice, bob, carol = [await cluster.add_user(name) for name in ("alice", "bob", "carol")]
    await befriend(cluster, alice, bob, carol)
    a = await caps_client(cluster, "n1", alice, resource="desk")
    await publish(a, alice, 1)

    # bob logs in on n2 after the publication: n2 learns his caps and sends him the last item
    b = await caps_client(cluster, "n2", bob, interests=(DEVICELIST,))
    assert devices(await next_event(b, on_node(DEVICELIST))) == ["1"]
    c = await caps_client(cluster, "n3", carol)  # caps without +notify
    own = await caps_client(cluster, "n3", alice, interests=(DEVICELIST,), resource="tablet")
    assert devices(await next_event(own, on_node(DEVICELIST))) == ["1"]
    await asyncio.sleep(PROPAGATION)  # n1 hears what n2 and n3 learnt of their clients' caps

    await publish(a, alice, 1, 2)  # on n1: bob (n2) and alice's tablet (n3) asked for it, carol did not
    assert devices(await next_event(b, on_node(DEVICELIST))) == ["1", "2"]
    assert devices(await next_event(own, on_node(DEVICELIST))) == ["1", "2"]
    await no_event(c, on_node(DEVICELIST))


async def test_interests_learnt_after_a_module_reload_still_reach_the_other_nodes(cluster: Cluster) -> None:
    """Once a session's caps are known its node publishes its record again, so the others learn what it
    wants, also when the session sends nothing more; a reload of the modules (which makes the caps and
    chat modules anew) keeps that."""
    await cluster.reload_modules("n2", "[modules.caps]\ncache_size = 5000\n")
    gwen, hugo, iona = [await cluster.add_user(name) for name in ("gwen", "hugo", "iona")]
    await befriend(cluster, gwen, hugo)
    g = await incurious_caps_client(cluster, "n1", gwen)
    await publish(g, gwen, 7)

    # iona, on n2 too, has the same caps and is asked first; she answers only once hugo has sent his
    # presence and a ping: the answer teaches n2 hugo's caps without a stanza of his after it.
    i = await cluster.client("n2", iona, presence=False)
    asked, answer = asyncio.Event(), asyncio.Event()
    disco = i.plugin["xep_0030"]

    async def answer_later(query: Any) -> None:
        asked.set()
        await answer.wait()
        await disco._handle_disco_info(query)

    i.remove_handler("Disco Info")
    i.register_handler(CoroutineCallback("Disco Info", StanzaPath("iq/disco_info"), answer_later))
    await announce_caps(i, (DEVICELIST,))
    await asyncio.wait_for(asked.wait(), 10)
    h = await incurious_caps_client(cluster, "n2", hugo, interests=(DEVICELIST,))
    answer.set()
    assert devices(await next_event(h, on_node(DEVICELIST))) == ["7"]  # n2's PEP, once it knows his caps
    await asyncio.sleep(PROPAGATION)

    await publish(g, gwen, 7, 8)  # on n1: only n2's republished record of hugo tells it what he wants
    assert devices(await next_event(h, on_node(DEVICELIST))) == ["7", "8"]


async def test_pubsub_service_subscribers_on_other_nodes_are_notified(cluster: Cluster) -> None:
    erin, frank = await cluster.add_user("erin"), await cluster.add_user("frank")
    e = await caps_client(cluster, "n1", erin)
    f = await caps_client(cluster, "n3", frank)
    service = f"pubsub.{DOMAIN}"
    await e.plugin["xep_0060"].create_node(service, "news")
    await f.plugin["xep_0060"].subscribe(service, "news")
    await e.plugin["xep_0060"].publish(service, "news", id="first", payload=payload("<entry xmlns='urn:example'/>"))
    event = await next_event(f, on_node("news"))
    assert [item.get("id") for item in items_of(event, "news")] == ["first"]


BLOCKING = "urn:xmpp:blocking"


def pushed(client: Client) -> asyncio.Queue[ET.Element]:
    """The <block/> pushes the client gets (answered, as XEP-0191 asks)."""
    found: asyncio.Queue[ET.Element] = asyncio.Queue()

    def on_push(stanza: Any) -> None:
        found.put_nowait(stanza.xml.find(f"{{{BLOCKING}}}block"))
        stanza.reply().send()

    client.register_handler(Callback("block pushes", MatchXPath(f"{{jabber:client}}iq/{{{BLOCKING}}}block"), on_push))
    return found


async def test_a_block_made_on_one_node_refuses_messages_through_the_others_at_once(cluster: Cluster) -> None:
    gina, hank = await cluster.add_user("gina"), await cluster.add_user("hank")
    g = await cluster.client("n1", gina)
    h = await cluster.client("n2", hank)
    await iq(g, "get", f"<blocklist xmlns='{BLOCKING}'/>")  # n1 caches gina's (empty) list
    laptop = await cluster.client("n3", gina, resource="laptop")
    await iq(laptop, "get", f"<blocklist xmlns='{BLOCKING}'/>")  # it wants pushes (XEP-0191 §3.3), from n3
    pushes = pushed(laptop)
    h.send_message(mto=gina, mbody="before", mtype="chat")  # n2 caches it too, checking this message
    assert (await g.next_message())["body"] == "before"
    await ping(h)

    await iq(g, "set", f"<block xmlns='{BLOCKING}'><item jid='{hank}'/></block>")  # through n1
    blocked = h.make_message(mto=gina, mbody="blocked", mtype="chat")
    blocked["id"] = "blocked-1"
    blocked.send()  # through n2, at once
    push = await asyncio.wait_for(pushes.get(), 5)
    assert [i.get("jid") for i in push.iter(f"{{{BLOCKING}}}item")] == [hank]
    error = await h.next_message()  # an error, as if gina were offline (XEP-0191 §3.3)
    assert (error["type"], error["id"], error["error"]["condition"]) == ("error", "blocked-1", "service-unavailable")

    await iq(g, "set", f"<unblock xmlns='{BLOCKING}'><item jid='{hank}'/></unblock>")
    h.send_message(mto=gina, mbody="after", mtype="chat")
    assert (await g.next_message())["body"] == "after"


AVATAR_METADATA = "urn:xmpp:avatar:metadata"
PHOTO = "{vcard-temp:x:update}x/{vcard-temp:x:update}photo"


async def presence_of(client: Client, sender: str) -> ET.Element:
    while True:
        presence = await client.next_presence(ptype="available")
        if str(presence["from"]) == sender:
            return presence.xml


async def test_an_avatar_published_on_one_node_is_in_presence_sent_through_another(cluster: Cluster) -> None:
    ivan = await cluster.add_user("ivan")
    desk = await cluster.client("n1", ivan, resource="desk")
    desk.register_plugin("xep_0060")
    phone = await cluster.client("n2", ivan, resource="phone")  # n2 learns ivan has no avatar
    assert (await presence_of(desk, f"{ivan}/phone")).find(PHOTO) is None

    avatar = "a" * 40
    await desk.plugin["xep_0060"].publish(ivan, AVATAR_METADATA, id=avatar, payload=payload(
        f"<metadata xmlns='{AVATAR_METADATA}'><info id='{avatar}' bytes='1' type='image/png'/></metadata>"))
    phone.send_presence(pstatus="new avatar")  # through n2: with the hash published through n1
    assert (await presence_of(desk, f"{ivan}/phone")).findtext(PHOTO) == avatar


MAM = "urn:xmpp:mam:2"
SID = "{urn:xmpp:sid:0}stanza-id"


async def test_what_a_killed_node_had_not_had_acknowledged_is_in_the_archive(cluster: Cluster) -> None:
    """Stream management's queue of a killed node is not mirrored: a client that cannot resume elsewhere
    fetches what it missed from the archive (MAM), after the last message it has, as Conversations,
    Monal, Dino, Gajim and Converse.js do on every reconnection."""
    kate, leo = await cluster.add_user("kate"), await cluster.add_user("leo")
    sender = await cluster.client("n1", leo)
    phone = Phone(f"{kate}/phone", cluster.nodes["n3"].ca_file)
    cluster.clients.append(phone)
    received = raw_messages(phone)
    phone.connect(host="127.0.0.1", port=cluster.nodes["n3"].port)
    await asyncio.wait_for(phone.started.wait(), 15)
    await until(lambda: phone.sm.sm_id is not None, "stream management enabled")
    phone.send_presence()
    await ping(phone)
    await asyncio.sleep(PROPAGATION)  # n1 sees the phone available
    full = str(phone.boundjid)
    first = await send_numbered(sender, full, range(1, 4))
    await until(lambda: len(phone.bodies) == 3, "the first messages arrived")
    last_seen = [m for m in [received.get_nowait() for _ in range(received.qsize())] if m.find(SID) is not None][-1]
    assert phone.transport is not None
    phone.transport.pause_reading()  # the radio fades: n3 sends, the phone never reads them
    later = await send_numbered(sender, full, range(4, 7))
    await ping(sender)
    await asyncio.sleep(0.5)  # n3 has written them to the phone's connection
    await cluster.kill("n3")
    phone.drop()
    try:
        phone.ssl_context = ssl.create_default_context(cafile=str(cluster.nodes["n2"].ca_file))
        phone.started.clear()
        phone.connect(host="127.0.0.1", port=cluster.nodes["n2"].port)
        await asyncio.wait_for(phone.started.wait(), 15)  # n2 cannot resume n3's stream: a fresh session
        assert not phone.resumed.is_set() and phone.bodies == first
        after = last_seen.find(SID).get("id")  # type: ignore[union-attr]
        await iq(phone, "set", f"<query xmlns='{MAM}' queryid='catch-up'><set xmlns='http://jabber.org/protocol/rsm'>"
                               f"<after>{after}</after></set></query>")
        archived = [m.findtext(f"{{{MAM}}}result/{{urn:xmpp:forward:0}}forwarded/{{jabber:client}}message/"
                               "{jabber:client}body") for m in [received.get_nowait() for _ in range(received.qsize())]]
        assert [body for body in archived if body] == later
    finally:
        await cluster.start("n3")  # back for the next tests
