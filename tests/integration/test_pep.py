"""PEP (XEP-0163) with entity capabilities (XEP-0115): OMEMO-style device lists and bundles, +notify
filtering, publish-options preconditions and PubSub private storage (XEP-0223)."""

from __future__ import annotations

import asyncio

from tests.integration.harness import PASSWORD, Client, Harness
from tests.integration.pubsub_helpers import (
    befriend,
    caps_client,
    failure,
    form,
    items_of,
    next_event,
    no_event,
    on_node,
    payload,
    pubsub_client,
)

DEVICELIST = "eu.siacs.conversations.axolotl.devicelist"
BUNDLE = "eu.siacs.conversations.axolotl.bundles:31415"
AXOLOTL = "eu.siacs.conversations.axolotl"
PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"


def devicelist(*ids: int) -> str:
    devices = "".join(f"<device id='{i}'/>" for i in ids)
    return f"<list xmlns='{AXOLOTL}'>{devices}</list>"


def bundle() -> str:
    return (f"<bundle xmlns='{AXOLOTL}'><signedPreKeyPublic signedPreKeyId='1'>BQ==</signedPreKeyPublic>"
            "<signedPreKeySignature>AA==</signedPreKeySignature><identityKey>BQ==</identityKey>"
            "<prekeys><preKeyPublic preKeyId='1'>BQ==</preKeyPublic></prekeys></bundle>")


def open_access(client: object) -> object:
    return form(client, PUBLISH_OPTIONS, pubsub__access_model="open")


async def test_omemo_device_list_and_bundle_reach_a_contact_with_notify(harness: Harness) -> None:
    alice_jid, alice = await pubsub_client(harness, "alice")
    bob_jid = await harness.user("bob")
    carol_jid = await harness.user("carol")
    dave_jid, dave = await pubsub_client(harness, "dave")  # not a contact
    await befriend(harness, (alice_jid, bob_jid), (alice_jid, carol_jid))
    ps = alice.plugin["xep_0060"]

    await ps.publish(alice_jid, DEVICELIST, id="current", payload=payload(devicelist(1)), options=open_access(alice))
    await ps.publish(alice_jid, BUNDLE, id="current", payload=payload(bundle()), options=open_access(alice))

    bob = await caps_client(harness, bob_jid, interests=(DEVICELIST,))
    last = await next_event(bob, on_node(DEVICELIST))  # the last item, sent once bob's caps are known
    assert [d.get("id") for d in items_of(last, DEVICELIST)[0][0]] == ["1"]
    carol = await caps_client(harness, carol_jid)  # caps without +notify

    await ps.publish(alice_jid, DEVICELIST, id="current", payload=payload(devicelist(1, 2)),
                     options=open_access(alice))
    event = await next_event(bob, on_node(DEVICELIST))
    [item] = items_of(event, DEVICELIST)
    assert item.get("id") == "current"
    assert [d.get("id") for d in item[0]] == ["1", "2"]
    await no_event(carol, on_node(DEVICELIST))

    # Open access: anybody fetches the bundle, not only contacts.
    fetched = await dave.plugin["xep_0060"].get_items(alice_jid, BUNDLE, max_items=1)
    assert fetched["pubsub"]["items"]["node"] == BUNDLE
    assert fetched.xml.find(f".//{{{AXOLOTL}}}bundle") is not None
    assert dave_jid


async def test_publish_options_that_do_not_match_are_refused(harness: Harness) -> None:
    alice_jid, alice = await pubsub_client(harness, "alice")
    ps = alice.plugin["xep_0060"]
    await ps.publish(alice_jid, DEVICELIST, id="current", payload=payload(devicelist(7)), options=open_access(alice))
    whitelist = form(alice, PUBLISH_OPTIONS, pubsub__access_model="whitelist")
    assert await failure(ps.publish(alice_jid, DEVICELIST, id="current", payload=payload(devicelist(8)),
                                    options=whitelist)) == ("conflict", "precondition-not-met")
    items = await ps.get_items(alice_jid, DEVICELIST)
    assert items.xml.find(f".//{{{AXOLOTL}}}device").get("id") == "7"
    config = await ps.get_node_config(alice_jid, DEVICELIST)
    assert config["pubsub_owner"]["configure"]["form"].get_fields()["pubsub#access_model"]["value"] == "open"


async def test_presence_is_the_default_access_model(harness: Harness) -> None:
    alice_jid, alice = await pubsub_client(harness, "alice")
    bob_jid, bob = await pubsub_client(harness, "bob")
    _dave, dave = await pubsub_client(harness, "dave")
    await befriend(harness, (alice_jid, bob_jid))
    tune = "<tune xmlns='http://jabber.org/protocol/tune'><title>Yesterday</title></tune>"
    await alice.plugin["xep_0060"].publish(alice_jid, "http://jabber.org/protocol/tune", payload=payload(tune))
    got = await bob.plugin["xep_0060"].get_items(alice_jid, "http://jabber.org/protocol/tune")
    assert got.xml.find(".//{http://jabber.org/protocol/tune}title").text == "Yesterday"
    assert await failure(dave.plugin["xep_0060"].get_items(alice_jid, "http://jabber.org/protocol/tune")) == (
        "not-authorized", "presence-subscription-required")
    assert await failure(bob.plugin["xep_0060"].publish(alice_jid, "http://jabber.org/protocol/tune",
                                                         payload=payload(tune))) == ("forbidden", None)


async def test_private_pubsub_storage(harness: Harness) -> None:
    alice_jid, alice = await pubsub_client(harness, "alice")
    bob_jid, bob = await pubsub_client(harness, "bob")
    await befriend(harness, (alice_jid, bob_jid))
    private = form(alice, PUBLISH_OPTIONS, pubsub__persist_items="true", pubsub__access_model="whitelist",
                   pubsub__send_last_published_item="never")
    secret = "<settings xmlns='urn:example:settings'><theme>dark</theme></settings>"
    await alice.plugin["xep_0060"].publish(alice_jid, "urn:example:settings", id="current",
                                           payload=payload(secret), options=private)
    mine = await alice.plugin["xep_0060"].get_items(alice_jid, "urn:example:settings")
    assert mine.xml.find(".//{urn:example:settings}theme").text == "dark"
    assert await failure(bob.plugin["xep_0060"].get_items(alice_jid, "urn:example:settings")) == (
        "not-allowed", "closed-node")


async def test_server_caps_in_stream_features_verify(harness: Harness) -> None:
    """slixmpp checks the server's <c/> from stream features against the server's disco#info answer."""
    alice = Client(f"{await harness.user('alice')}/caps", PASSWORD, harness.ca_file)
    alice.register_plugin("xep_0115")  # before connecting, so it sees the stream features
    harness.clients.append(alice)
    alice.connect(host="127.0.0.1", port=harness.port)
    await asyncio.wait_for(alice.started.wait(), 15)
    caps = alice.plugin["xep_0115"]
    async with asyncio.timeout(5):
        while not (ver := await caps.get_verstring(harness.domain)):  # set once the hash verified
            await asyncio.sleep(0.02)
    info = await alice.plugin["xep_0030"].get_info(jid=harness.domain, node=f"https://parlour.chat/caps#{ver}")
    assert caps.generate_verstring(info["disco_info"], "sha-1") == ver
    assert "http://jabber.org/protocol/pubsub#publish-options" in info["disco_info"]["features"]
