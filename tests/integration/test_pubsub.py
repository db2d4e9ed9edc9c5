"""The publish-subscribe service on pubsub.<domain> (XEP-0060) with real slixmpp clients."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from appliance.catalog import default_config
from appliance.modules.pubsub.service import PubSubOptions
from tests.integration.harness import Harness, start_harness
from tests.integration.pubsub_helpers import (
    NS_PUBSUB_EVENT,
    failure,
    form,
    items_of,
    next_event,
    no_event,
    on_node,
    payload,
    pubsub_client,
)

NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config"
ENTRY = "<entry xmlns='http://www.w3.org/2005/Atom'><title>{}</title></entry>"


def service(harness: Harness) -> str:
    return f"pubsub.{harness.domain}"


async def test_disco_shows_the_service_and_its_nodes(harness: Harness) -> None:
    _alice, alice = await pubsub_client(harness, "alice")
    items = await alice.plugin["xep_0030"].get_items(jid=harness.domain)
    assert service(harness) in [i[0] for i in items["disco_items"]["items"]]
    info = await alice.plugin["xep_0030"].get_info(jid=service(harness))
    assert ("pubsub", "service", None, "Publish-Subscribe") in info["disco_info"]["identities"]
    features = info["disco_info"]["features"]
    assert "http://jabber.org/protocol/pubsub#publish-options" in features
    assert "http://jabber.org/protocol/pubsub#collections" not in features
    await alice.plugin["xep_0060"].create_node(service(harness), "news")
    nodes = await alice.plugin["xep_0060"].get_nodes(jid=service(harness))
    assert [(i[0], i[1]) for i in nodes["disco_items"]["items"]] == [(service(harness), "news")]


async def test_whitelist_node_refuses_an_outsider_and_notifies_subscribers(harness: Harness) -> None:
    _alice, alice = await pubsub_client(harness, "alice")
    bob_jid, bob = await pubsub_client(harness, "bob")
    _carol, carol = await pubsub_client(harness, "carol")
    ps = alice.plugin["xep_0060"]
    await ps.create_node(service(harness), "board", config=form(
        alice, NODE_CONFIG, pubsub__access_model="whitelist"))
    await ps.modify_affiliations(service(harness), "board", [(bob_jid, "member")])

    await bob.plugin["xep_0060"].subscribe(service(harness), "board")
    assert await failure(carol.plugin["xep_0060"].subscribe(service(harness), "board")) == (
        "not-allowed", "closed-node")
    assert await failure(carol.plugin["xep_0060"].get_items(service(harness), "board")) == (
        "not-allowed", "closed-node")

    await ps.publish(service(harness), "board", id="n1", payload=payload(ENTRY.format("minutes")))
    event = await next_event(bob, on_node("board"))
    [item] = items_of(event, "board")
    assert item.get("id") == "n1"
    assert item.find("{http://www.w3.org/2005/Atom}entry/{http://www.w3.org/2005/Atom}title").text == "minutes"
    await no_event(carol, on_node("board"))


async def test_authorize_model_holds_subscriptions_until_the_owner_approves(harness: Harness) -> None:
    alice_jid, alice = await pubsub_client(harness, "alice")
    bob_jid, bob = await pubsub_client(harness, "bob")
    await alice.plugin["xep_0060"].create_node(service(harness), "club", config=form(
        alice, NODE_CONFIG, pubsub__access_model="authorize"))

    result = await bob.plugin["xep_0060"].subscribe(service(harness), "club")
    assert result["pubsub"]["subscription"]["subscription"] == "pending"
    request = await alice.next_message()
    assert request["from"] == service(harness)
    fields = request["form"].get_fields()
    assert fields["pubsub#subscriber_jid"]["value"] == bob_jid
    assert await failure(bob.plugin["xep_0060"].get_items(service(harness), "club")) == (
        "not-authorized", "not-subscribed")

    await alice.plugin["xep_0060"].modify_subscriptions(service(harness), "club", [(bob_jid, "subscribed")])
    changed = await next_event(bob, on_node("club"))
    assert changed.find(f"{{{NS_PUBSUB_EVENT}}}subscription").get("subscription") == "subscribed"
    await alice.plugin["xep_0060"].publish(service(harness), "club", payload=payload(ENTRY.format("hi")))
    assert items_of(await next_event(bob, on_node("club")), "club")
    assert alice_jid != bob_jid


async def test_presence_model_needs_a_presence_subscription(harness: Harness) -> None:
    _alice, alice = await pubsub_client(harness, "alice")
    _bob, bob = await pubsub_client(harness, "bob")
    await alice.plugin["xep_0060"].create_node(service(harness), "status", config=form(
        alice, NODE_CONFIG, pubsub__access_model="presence"))
    assert await failure(bob.plugin["xep_0060"].subscribe(service(harness), "status")) == (
        "not-authorized", "presence-subscription-required")


async def test_max_items_retract_and_last_item_on_subscribe(harness: Harness) -> None:
    _alice, alice = await pubsub_client(harness, "alice")
    _bob, bob = await pubsub_client(harness, "bob")
    ps = alice.plugin["xep_0060"]
    await ps.create_node(service(harness), "feed", config=form(alice, NODE_CONFIG, pubsub__max_items="2"))
    for n in range(1, 4):
        await ps.publish(service(harness), "feed", id=f"i{n}", payload=payload(ENTRY.format(n)))
    items = await ps.get_items(service(harness), "feed")
    assert [i["id"] for i in items["pubsub"]["items"]] == ["i3", "i2"]
    one = await ps.get_items(service(harness), "feed", max_items=1)
    assert [i["id"] for i in one["pubsub"]["items"]] == ["i3"]
    by_id = await ps.get_items(service(harness), "feed", item_ids=["i2"])
    assert [i["id"] for i in by_id["pubsub"]["items"]] == ["i2"]

    await bob.plugin["xep_0060"].subscribe(service(harness), "feed")
    last = await next_event(bob, on_node("feed"))
    assert [i.get("id") for i in items_of(last, "feed")] == ["i3"]

    await ps.retract(service(harness), "feed", "i2", notify=True)
    retracted = await next_event(bob, on_node("feed"))
    assert [r.get("id") for r in retracted.iter(f"{{{NS_PUBSUB_EVENT}}}retract")] == ["i2"]
    assert await failure(ps.retract(service(harness), "feed", "i2")) == ("item-not-found", None)
    assert await failure(bob.plugin["xep_0060"].retract(service(harness), "feed", "i3")) == ("forbidden", None)


async def test_errors_per_xep_0060(harness: Harness) -> None:
    _alice, alice = await pubsub_client(harness, "alice")
    ps = alice.plugin["xep_0060"]
    assert await failure(ps.get_items(service(harness), "missing")) == ("item-not-found", None)
    await ps.create_node(service(harness), "dup")
    assert await failure(ps.create_node(service(harness), "dup")) == ("conflict", None)
    assert await failure(ps.create_node(service(harness), "coll", config=form(
        alice, NODE_CONFIG), ntype="collection")) == ("feature-not-implemented", "unsupported")
    assert await failure(ps.publish(service(harness), "dup", payload=payload(ENTRY.format(1)), options=form(
        alice, "http://jabber.org/protocol/pubsub#publish-options", pubsub__access_model="whitelist"
    ))) == ("conflict", "precondition-not-met")


async def test_nodes_and_items_survive_a_restart(tmp_path: Path) -> None:
    harness = await start_harness(tmp_path)
    try:
        _alice, alice = await pubsub_client(harness, "alice")
        bob_jid, _bob = await pubsub_client(harness, "bob")
        ps = alice.plugin["xep_0060"]
        await ps.create_node(service(harness), "kept", config=form(
            alice, NODE_CONFIG, pubsub__access_model="whitelist", pubsub__max_items="5"))
        await ps.modify_affiliations(service(harness), "kept", [(bob_jid, "member")])
        await ps.publish(service(harness), "kept", id="a", payload=payload(ENTRY.format("before")))
    finally:
        await harness.close()
    harness = await start_harness(tmp_path)
    try:
        alice = await harness.client(f"alice@{harness.domain}")
        alice.register_plugin("xep_0060")
        items = await alice.plugin["xep_0060"].get_items(service(harness), "kept")
        assert [i["id"] for i in items["pubsub"]["items"]] == ["a"]
        config = await alice.plugin["xep_0060"].get_node_config(service(harness), "kept")
        fields = config["pubsub_owner"]["configure"]["form"].get_fields()
        assert fields["pubsub#access_model"]["value"] == "whitelist"
        assert fields["pubsub#max_items"]["value"] == "5"
        carol = await harness.client(await harness.user("carol"))
        carol.register_plugin("xep_0060")
        assert await failure(carol.plugin["xep_0060"].subscribe(service(harness), "kept")) == (
            "not-allowed", "closed-node")
    finally:
        await harness.close()


async def test_only_admins_create_nodes_when_configured(tmp_path: Path) -> None:
    host = default_config(tmp_path).hosts[0]
    modules = host.modules.with_options(PubSubOptions(create_nodes="admins"))
    harness = await start_harness(tmp_path, hosts=(replace(host, modules=modules),))
    try:
        _alice, alice = await pubsub_client(harness, "alice")
        assert await failure(alice.plugin["xep_0060"].create_node(service(harness), "x")) == ("forbidden", None)
    finally:
        await harness.close()
