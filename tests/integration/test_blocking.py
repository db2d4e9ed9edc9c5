"""XEP-0191 blocking with real clients: the list, pushes, enforcement both ways, presence, persistence."""

from __future__ import annotations

import asyncio
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from slixmpp.exceptions import IqError

from appliance.modules.blocking import BlockingService
from appliance.xmpp.jid import JID
from tests.integration.harness import Client, Harness, start_harness
from tests.integration.test_im import subscribe_both

NS_BLOCKING = "urn:xmpp:blocking"
BLOCKED = "{urn:xmpp:blocking:errors}blocked"


async def blocking_client(harness: Harness, jid: str, **kwargs: object) -> Client:
    """A logged-in client with the XEP-0191 plugin whose block/unblock pushes land in queues."""
    client = await harness.client(jid, **kwargs)  # type: ignore[arg-type]
    client.register_plugin("xep_0191")
    client.block_pushes = asyncio.Queue()  # type: ignore[attr-defined]
    client.unblock_pushes = asyncio.Queue()  # type: ignore[attr-defined]
    client.message_errors = asyncio.Queue()  # type: ignore[attr-defined]
    client.add_event_handler("blocked", client.block_pushes.put_nowait)  # type: ignore[attr-defined]
    client.add_event_handler("unblocked", client.unblock_pushes.put_nowait)  # type: ignore[attr-defined]
    client.add_event_handler("message_error", client.message_errors.put_nowait)  # type: ignore[attr-defined]
    return client


async def next_body(client: Client) -> str:
    """The body of the next message that is not an error (slixmpp reports errors as messages too)."""
    while True:
        message = await client.next_message()
        if message["type"] != "error":
            return str(message["body"])


def pushed_jids(iq: object, kind: str) -> set[str]:
    return {str(item["jid"]) for item in iq[kind]}  # type: ignore[index]


async def test_block_list_and_push_to_resources_that_asked(harness: Harness) -> None:
    alice = await harness.user("alice")
    bob = await harness.user("bob")
    phone = await blocking_client(harness, alice, resource="phone")
    laptop = await blocking_client(harness, alice, resource="laptop")
    tablet = await blocking_client(harness, alice, resource="tablet")  # never asks for the list
    assert await phone.plugin["xep_0191"].get_blocked_jids() == set()
    assert await laptop.plugin["xep_0191"].get_blocked_jids() == set()

    await phone.plugin["xep_0191"].block([bob, "spam.example"])
    for client in (phone, laptop):
        push = await asyncio.wait_for(client.block_pushes.get(), 5)
        assert pushed_jids(push, "block") == {bob, "spam.example"}
    assert {str(j) for j in await laptop.plugin["xep_0191"].get_blocked_jids()} == {bob, "spam.example"}

    await laptop.plugin["xep_0191"].unblock("spam.example")
    push = await asyncio.wait_for(phone.unblock_pushes.get(), 5)
    assert pushed_jids(push, "unblock") == {"spam.example"}
    assert {str(j) for j in await phone.plugin["xep_0191"].get_blocked_jids()} == {bob}
    # The tablet never requested the blocklist, so it got no pushes.
    assert tablet.block_pushes.empty() and tablet.unblock_pushes.empty()


async def test_block_errors(harness: Harness) -> None:
    alice = await harness.user("alice")
    client = await blocking_client(harness, alice)

    empty = client.make_iq_set()
    empty.xml.append(ET.Element(f"{{{NS_BLOCKING}}}block"))
    with pytest.raises(IqError) as caught:
        await empty.send()
    assert caught.value.iq["error"]["condition"] == "bad-request"

    malformed = client.make_iq_set()
    block = ET.SubElement(malformed.xml, f"{{{NS_BLOCKING}}}block")
    ET.SubElement(block, f"{{{NS_BLOCKING}}}item", jid="bad@@jid")
    with pytest.raises(IqError) as caught:
        await malformed.send()
    assert caught.value.iq["error"]["condition"] == "jid-malformed"
    assert await client.plugin["xep_0191"].get_blocked_jids() == set()


async def test_blocked_messages_go_nowhere_and_the_blocker_is_told(harness: Harness) -> None:
    alice = await harness.user("alice")
    bob = await harness.user("bob")
    carol = await harness.user("carol")
    a = await blocking_client(harness, alice)
    b = await blocking_client(harness, bob)
    c = await blocking_client(harness, carol)
    await a.plugin["xep_0191"].block(bob)

    # Bob's message is refused as if Alice were unreachable, and never reaches her.
    b.send_message(mto=alice, mbody="let me in", mtype="chat")
    error = await asyncio.wait_for(b.message_errors.get(), 5)
    assert error["error"]["condition"] == "service-unavailable"
    c.send_message(mto=alice, mbody="hello from carol", mtype="chat")
    assert await next_body(a) == "hello from carol"

    # Alice writing to Bob gets <not-acceptable/> with <blocked/>.
    a.send_message(mto=f"{bob}/test", mbody="can you hear me?", mtype="chat")
    error = await asyncio.wait_for(a.message_errors.get(), 5)
    assert error["error"]["condition"] == "not-acceptable"
    assert error.xml.find(f".//{BLOCKED}") is not None

    # IQs from Bob to Alice are answered service-unavailable.
    with pytest.raises(IqError) as caught:
        await b.plugin["xep_0030"].get_info(jid=f"{alice}/test")
    assert caught.value.iq["error"]["condition"] == "service-unavailable"
    # Alice's IQs to Bob too: IQs skip the outgoing guard, so the inbound one asks Alice's list as well.
    with pytest.raises(IqError) as caught:
        await a.plugin["xep_0030"].get_info(jid=f"{bob}/test")
    assert caught.value.iq["error"]["condition"] == "not-acceptable"

    await a.plugin["xep_0191"].unblock(bob)
    b.send_message(mto=alice, mbody="now?", mtype="chat")
    assert await next_body(a) == "now?"


async def test_block_sends_unavailable_and_unblock_current_presence(harness: Harness) -> None:
    alice = await harness.user("alice")
    bob = await harness.user("bob")
    a = await blocking_client(harness, alice)
    b = await blocking_client(harness, bob)
    await subscribe_both(a, b, alice, bob)
    a.send_presence(pstatus="around")

    async def next_from_alice(ptype: str | None) -> None:
        while True:
            presence = await b.next_presence()
            if str(presence["from"]) == f"{alice}/test" and presence["type"] in (ptype or "available",):
                return

    await asyncio.wait_for(next_from_alice(None), 5)
    await a.plugin["xep_0191"].block(bob)
    await asyncio.wait_for(next_from_alice("unavailable"), 5)
    await a.plugin["xep_0191"].unblock(bob)
    await asyncio.wait_for(next_from_alice(None), 5)


async def test_blocklist_survives_reconnect_and_restart(tmp_path: Path) -> None:
    harness = await start_harness(tmp_path)
    try:
        alice = await harness.user("alice")
        client = await blocking_client(harness, alice)
        await client.plugin["xep_0191"].block(["mallory@localhost", "evil.example/bot"])
        client.disconnect()
        again = await blocking_client(harness, alice, resource="again")
        blocked = {str(j) for j in await again.plugin["xep_0191"].get_blocked_jids()}
        assert blocked == {"mallory@localhost", "evil.example/bot"}
    finally:
        await harness.close()
    harness = await start_harness(tmp_path)  # a new server process state: only the database remains
    try:
        client = await blocking_client(harness, "alice@localhost")
        blocked = {str(j) for j in await client.plugin["xep_0191"].get_blocked_jids()}
        assert blocked == {"mallory@localhost", "evil.example/bot"}
    finally:
        await harness.close()


async def test_blocks_hold_after_a_restart_before_any_list_is_in_memory(tmp_path: Path) -> None:
    """The guards answer at once from the lists in memory; a list not loaded yet is read from storage
    first, so a block made before a restart holds for the very first stanzas, both ways."""
    harness = await start_harness(tmp_path)
    try:
        alice, bob = await harness.user("alice"), await harness.user("bob")
        a = await blocking_client(harness, alice)
        await a.plugin["xep_0191"].block(bob)
    finally:
        await harness.close()
    harness = await start_harness(tmp_path)
    try:
        a = await harness.client(alice)
        b = await harness.client(bob)
        b.message_errors = asyncio.Queue()  # type: ignore[attr-defined]
        b.add_event_handler("message_error", b.message_errors.put_nowait)  # type: ignore[attr-defined]
        service = harness.server.hosts[harness.domain].services[BlockingService]
        assert service.cached_blocks(JID.parse(alice), JID.parse(bob)) is None  # nothing loaded: the slow path

        b.send_message(mto=alice, mbody="let me in", mtype="chat")
        error = await asyncio.wait_for(b.message_errors.get(), 5)  # type: ignore[attr-defined]
        assert error["error"]["condition"] == "service-unavailable"
        assert service.cached_blocks(JID.parse(alice), JID.parse(bob)) is True  # loaded on the way

        await harness.close()
        harness = await start_harness(tmp_path)
        a = await harness.client(alice)
        a.message_errors = asyncio.Queue()  # type: ignore[attr-defined]
        a.add_event_handler("message_error", a.message_errors.put_nowait)  # type: ignore[attr-defined]
        service = harness.server.hosts[harness.domain].services[BlockingService]
        assert service.cached_blocks(JID.parse(alice), JID.parse(bob)) is None
        a.send_message(mto=f"{bob}/test", mbody="can you hear me?", mtype="chat")
        error = await asyncio.wait_for(a.message_errors.get(), 5)  # type: ignore[attr-defined]
        assert error["error"]["condition"] == "not-acceptable"
        assert error.xml.find(f".//{BLOCKED}") is not None
    finally:
        await harness.close()
