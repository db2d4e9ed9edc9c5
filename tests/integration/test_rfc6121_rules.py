"""RFC 6121 delivery and subscription rules, and login limits, with real slixmpp clients."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from appliance.modules.offline import OfflineOptions
from tests.integration.harness import Client, Harness, make_config, start_harness


async def roster_item(client: Client, jid: str, *, subscription: str, timeout: float = 5.0) -> None:
    """Wait until the client's roster shows `jid` with `subscription` (pushes arrive asynchronously)."""
    async with asyncio.timeout(timeout):
        while client.client_roster[jid]["subscription"] != subscription:
            await asyncio.sleep(0.02)


def manual(*clients: Client) -> None:
    for client in clients:
        client.auto_authorize = None
        client.auto_subscribe = False


async def test_preapproval_makes_a_later_subscribe_succeed_without_asking(harness: Harness) -> None:
    alice, bob = await harness.user("alice"), await harness.user("bob")
    a, b = await harness.client(alice), await harness.client(bob)
    manual(a, b)
    b.send_presence(pto=alice, ptype="subscribed")  # pre-approve alice (RFC 6121 §3.4)
    await b.plugin["xep_0199"].ping(jid=harness.domain)  # bob's stanzas are handled in order
    a.send_presence(pto=bob, ptype="subscribe")
    await roster_item(a, bob, subscription="to")
    await roster_item(b, alice, subscription="from")
    # Bob was never asked: no subscribe request reached him.
    while not b.presences.empty():
        assert b.presences.get_nowait()["type"] != "subscribe"


async def test_subscription_request_to_offline_contact_is_delivered_at_login(harness: Harness) -> None:
    alice, bob = await harness.user("alice"), await harness.user("bob")
    a = await harness.client(alice)
    manual(a)
    a.send_presence(pto=bob, ptype="subscribe")
    await roster_item(a, bob, subscription="none")
    await a.plugin["xep_0199"].ping(jid=harness.domain)
    b = await harness.client(bob)
    request = await b.next_presence(ptype="subscribe")
    assert request["from"].bare == alice
    assert not request["from"].resource  # subscription stanzas carry the bare JID


async def test_probe_answers_and_unsubscribe_cuts_presence(harness: Harness) -> None:
    alice, bob = await harness.user("alice"), await harness.user("bob")
    a = await harness.client(alice)
    b = await harness.client(bob)
    a.send_presence(pto=bob, ptype="subscribe")  # slixmpp's defaults accept and subscribe back
    await roster_item(a, bob, subscription="both")
    await roster_item(b, alice, subscription="both")
    # A new resource of alice gets bob's current presence through the server's probe.
    b.send_presence(pstatus="here")
    a2 = await harness.client(alice, resource="second")
    while True:
        pres = await a2.next_presence()
        if pres["from"].bare == bob and pres["status"] == "here":
            break
    # Bob cancels alice's subscription: alice sees him go unavailable and her item drops to 'from'.
    b.send_presence(pto=alice, ptype="unsubscribed")
    await roster_item(a, bob, subscription="from")


async def test_message_types_to_an_unavailable_resource(harness: Harness) -> None:
    alice, bob = await harness.user("alice"), await harness.user("bob")
    a = await harness.client(alice)
    b = await harness.client(bob, resource="desk")
    # chat to an unknown resource falls back to the bare JID: delivered to the available resource.
    a.send_message(mto=f"{bob}/gone", mbody="chat fallback", mtype="chat")
    assert (await b.next_message())["body"] == "chat fallback"
    # groupchat to a user's JID is refused.
    a.send_message(mto=f"{bob}/gone", mbody="gc", mtype="groupchat")
    error = await a.next_message()
    assert error["type"] == "error"
    assert error["error"]["condition"] == "service-unavailable"
    # headline to an unknown resource is silently dropped; a later chat still arrives first.
    a.send_message(mto=f"{bob}/gone", mbody="news", mtype="headline")
    a.send_message(mto=f"{bob}/desk", mbody="after headline", mtype="chat")
    assert (await b.next_message())["body"] == "after headline"


async def test_negative_priority_resource_gets_no_bare_messages(harness: Harness) -> None:
    alice, bob = await harness.user("alice"), await harness.user("bob")
    a = await harness.client(alice)
    b = await harness.client(bob, presence=False)
    b.send_presence(ppriority=-1)
    await b.plugin["xep_0199"].ping(jid=harness.domain)
    a.send_message(mto=bob, mbody="stored, not delivered", mtype="chat")
    await a.plugin["xep_0199"].ping(jid=harness.domain)
    assert b.messages.empty()
    b2 = await harness.client(bob, resource="main")
    assert (await b2.next_message())["body"] == "stored, not delivered"


async def test_offline_limit_returns_an_error_to_the_sender(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    host = cfg.hosts[0]
    modules = host.modules.with_options(replace(host.modules.of(OfflineOptions), max_messages=2))
    harness = await start_harness(tmp_path, hosts=(replace(host, modules=modules),))
    try:
        alice, bob = await harness.user("alice"), await harness.user("bob")
        a = await harness.client(alice)
        for n in range(3):
            a.send_message(mto=bob, mbody=f"m{n}", mtype="chat")
        error = await a.next_message()
        assert error["type"] == "error"
        assert error["error"]["condition"] == "service-unavailable"
        assert error["body"] == "m2"
    finally:
        await harness.close()


async def test_remote_domains_are_unreachable_until_federation(harness: Harness) -> None:
    alice = await harness.user("alice")
    a = await harness.client(alice)
    a.send_message(mto="someone@remote.example", mbody="hi", mtype="chat")
    error = await a.next_message()  # federation is off by default: the sender is told so
    assert error["error"]["condition"] == "not-allowed"
    assert "other XMPP servers" in error["error"]["text"]
    server = harness.server
    assert server.core is not None
    on = replace(server.core.config.federation, enabled=True)
    await server.reload(replace(server.core.config, federation=on))
    a.send_message(mto="someone@remote.example", mbody="hi", mtype="chat")
    error = await a.next_message()  # allowed, but no server-to-server connection can be made
    assert error["error"]["condition"] == "remote-server-not-found"


async def test_server_generated_resource(harness: Harness) -> None:
    alice = await harness.user("alice")
    client = Client(alice, "correct horse", harness.ca_file)  # no resource requested
    harness.clients.append(client)
    client.connect(host="127.0.0.1", port=harness.port)
    await asyncio.wait_for(client.started.wait(), 15)
    assert client.boundjid.resource.startswith("parlour-")


async def test_legacy_session_request_is_answered(harness: Harness) -> None:
    from slixmpp.xmlstream import ET

    alice = await harness.user("alice")
    a = await harness.client(alice)
    iq = a.make_iq_set()
    iq.append(ET.Element("{urn:ietf:params:xml:ns:xmpp-session}session"))
    result = await iq.send()
    assert result["type"] == "result"
