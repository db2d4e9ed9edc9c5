"""RFC 6121 instant messaging with real clients: subscriptions, presence, message delivery rules, offline."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.harness import Harness


async def subscribe_both(a, b, a_jid: str, b_jid: str) -> None:
    """a and b subscribe to each other (slixmpp auto-authorizes by default)."""
    a.send_presence(pto=b_jid, ptype="subscribe")
    await b.next_presence(ptype="subscribe")
    b.send_presence(pto=a_jid, ptype="subscribed")
    b.send_presence(pto=a_jid, ptype="subscribe")
    await a.next_presence(ptype="subscribe")
    a.send_presence(pto=b_jid, ptype="subscribed")
    for _ in range(50):
        if a.client_roster[b_jid]["subscription"] == "both" and b.client_roster[a_jid]["subscription"] == "both":
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"subscription stuck at {a.client_roster[b_jid]['subscription']}")


async def test_chat_to_full_and_bare_jid(harness: Harness) -> None:
    alice = await harness.user("alice")
    bob = await harness.user("bob")
    a = await harness.client(alice)
    b = await harness.client(bob, resource="phone")
    a.send_message(mto=f"{bob}/phone", mbody="to full", mtype="chat")
    msg = await b.next_message()
    assert msg["body"] == "to full"
    assert str(msg["from"]) == f"{alice}/test"
    a.send_message(mto=bob, mbody="to bare", mtype="chat")
    msg = await b.next_message()
    assert msg["body"] == "to bare"


async def test_roster_add_push_and_remove(harness: Harness) -> None:
    alice = await harness.user("alice")
    a1 = await harness.client(alice, resource="one")
    a2 = await harness.client(alice, resource="two")
    pushed = asyncio.Event()
    a2.add_event_handler("roster_update", lambda _iq: pushed.set())
    await a1.update_roster("carol@localhost", name="Carol", groups=["Friends"])
    await asyncio.wait_for(pushed.wait(), 5)
    item = a2.client_roster["carol@localhost"]
    assert item["name"] == "Carol"
    assert item["groups"] == ["Friends"]
    assert item["subscription"] == "none"
    # A fetch without a cached version returns the full roster.
    result = await a1.make_iq_get(queryxmlns="jabber:iq:roster").send()
    assert "carol@localhost" in result["roster"]["items"]
    await a1.del_roster_item("carol@localhost")
    result = await a1.make_iq_get(queryxmlns="jabber:iq:roster").send()
    assert "carol@localhost" not in result["roster"]["items"]


async def test_subscription_and_presence_broadcast(harness: Harness) -> None:
    alice = await harness.user("alice")
    bob = await harness.user("bob")
    a = await harness.client(alice)
    b = await harness.client(bob)
    for c in (a, b):  # answer subscription requests by hand (None: slixmpp does nothing by itself)
        c.auto_authorize = None
        c.auto_subscribe = False
    await subscribe_both(a, b, alice, bob)
    # Presence change of bob reaches alice.
    b.send_presence(pstatus="busy", pshow="dnd")
    while True:
        pres = await a.next_presence()
        if pres["from"].bare == bob and pres["show"] == "dnd":
            break
    assert pres["status"] == "busy"
    # Bob disconnects: alice sees unavailable.
    b.disconnect()
    while True:
        pres = await a.next_presence(ptype="unavailable")
        if pres["from"].bare == bob:
            break


async def test_message_to_unknown_user_errors(harness: Harness) -> None:
    alice = await harness.user("alice")
    a = await harness.client(alice)
    a.send_message(mto="nobody@localhost", mbody="hello?", mtype="chat")
    msg = await a.next_message()
    assert msg["type"] == "error"
    assert msg["error"]["condition"] == "service-unavailable"


async def test_offline_message_delivered_on_login(harness: Harness) -> None:
    alice = await harness.user("alice")
    bob = await harness.user("bob")
    a = await harness.client(alice)
    a.send_message(mto=bob, mbody="while you were out", mtype="chat")
    await a.plugin["xep_0199"].ping(jid=harness.domain)  # processed in order: the message is stored
    b = await harness.client(bob)
    msg = await b.next_message()
    assert msg["body"] == "while you were out"
    assert msg["delay"]["stamp"] is not None



async def presence_from(client, full_jid: str, status: str):
    """The next presence `full_jid` sent with `status`; others (e.g. of other resources) are skipped."""
    while True:
        pres = await client.next_presence()
        if str(pres["from"]) == full_jid and pres["status"] == status:
            return pres


async def test_own_presence_comes_back_to_the_resource_that_sent_it(harness: Harness) -> None:
    """RFC 6121 §4.2.2 (initial) and §4.4.2 (subsequent): the sender is one of the account's available
    resources, so it gets its own broadcast too (slixmpp's avatar test waits for exactly that)."""
    alice = await harness.user("alice")
    a = await harness.client(alice, presence=False)
    other = await harness.client(alice, resource="other")
    a.send_presence(pstatus="initial")
    await presence_from(a, f"{alice}/test", "initial")
    a.send_presence(pstatus="later", pshow="away")
    assert (await presence_from(a, f"{alice}/test", "later"))["show"] == "away"
    assert (await presence_from(other, f"{alice}/test", "later"))["show"] == "away"
