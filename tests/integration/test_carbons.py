"""Message Carbons (XEP-0280) between two resources of one account, over real sockets."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest
from lxml import etree

from appliance.modules.carbons import eligible
from tests.integration.harness import Harness
from tests.integration.stanzas import iq, next_raw, raw_messages, send_message

CARBONS = "urn:xmpp:carbons:2"
FORWARD = "urn:xmpp:forward:0"


def copied(msg: ET.Element, kind: str) -> ET.Element | None:
    """The forwarded message inside a <sent/> or <received/> carbon, if `msg` is one."""
    holder = msg.find(f"{{{CARBONS}}}{kind}")
    return None if holder is None else holder.find(f"{{{FORWARD}}}forwarded/{{jabber:client}}message")


async def two_resources(harness: Harness):  # type: ignore[no-untyped-def]
    alice = await harness.user("alice")
    bob = await harness.user("bob")
    phone = await harness.client(alice, resource="phone")
    laptop = await harness.client(alice, resource="laptop")
    other = await harness.client(bob, resource="desk")
    for client in (phone, laptop):
        await iq(client, "set", f"<enable xmlns='{CARBONS}'/>")
    return alice, bob, phone, raw_messages(laptop), other


@pytest.mark.parametrize(("message", "copied_too"), [
    ("<message type='chat'><body>hi</body></message>", True),
    ("<message type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>", True),
    ("<message><body>hi</body></message>", True),  # 'normal' with a body
    ("<message type='normal'><request xmlns='urn:xmpp:receipts'/></message>", True),
    ("<message><displayed xmlns='urn:xmpp:chat-markers:0' id='x'/></message>", True),
    ("<message><x xmlns='jabber:x:oob'><url>u</url></x></message>", False),  # 'normal', no IM payload
    ("<message type='headline'><body>news</body></message>", False),
    ("<message type='groupchat'><body>room</body></message>", False),
    ("<message type='error'><body>hi</body></message>", False),
    (f"<message type='chat'><body>hi</body><private xmlns='{CARBONS}'/></message>", False),
    ("<message type='chat'><body>hi</body><no-copy xmlns='urn:xmpp:hints'/></message>", False),
    (f"<message type='chat'><received xmlns='{CARBONS}'/></message>", False),  # a copy is never copied
])
def test_which_messages_are_copied(message: str, copied_too: bool) -> None:
    """XEP-0280 §6 as `eligible` reads it in one pass over the payloads."""
    assert eligible(etree.fromstring(message.replace("<message", "<message xmlns='jabber:client'", 1))) is copied_too


async def test_feature_is_advertised(harness: Harness) -> None:
    alice = await harness.user("alice")
    client = await harness.client(alice)
    info = await client.plugin["xep_0030"].get_info(harness.domain)
    assert CARBONS in info["disco_info"]["features"]


async def test_sent_and_received_copies(harness: Harness) -> None:
    alice, bob, phone, laptop, other = await two_resources(harness)
    send_message(phone, bob, "hello from the phone")
    assert (await other.next_message())["body"] == "hello from the phone"
    carbon = await next_raw(laptop)
    assert carbon.get("from") == alice
    sent = copied(carbon, "sent")
    assert sent is not None and sent.findtext("{jabber:client}body") == "hello from the phone"
    assert sent.get("to") == bob

    # bob answers alice's full JID on the phone: the laptop gets a received copy
    send_message(other, f"{alice}/phone", "hi phone")
    assert (await phone.next_message())["body"] == "hi phone"
    received = copied(await next_raw(laptop), "received")
    assert received is not None and received.findtext("{jabber:client}body") == "hi phone"
    assert phone.messages.empty()


async def test_bare_jid_delivery_copies_to_lower_priority_resources(harness: Harness) -> None:
    alice, _bob, phone, laptop, other = await two_resources(harness)
    phone.send_presence(ppriority=5)
    await iq(phone, "get", "<ping xmlns='urn:xmpp:ping'/>")  # the presence was processed before this
    send_message(other, alice, "to the bare JID")
    assert (await phone.next_message())["body"] == "to the bare JID"
    received = copied(await next_raw(laptop), "received")
    assert received is not None and received.findtext("{jabber:client}body") == "to the bare JID"


async def test_private_and_no_copy_are_not_copied(harness: Harness) -> None:
    alice, bob, phone, laptop, other = await two_resources(harness)
    send_message(phone, bob, "secret", extra=f"<private xmlns='{CARBONS}'/>")
    send_message(phone, bob, "no copy", extra="<no-copy xmlns='urn:xmpp:hints'/>")
    send_message(other, f"{alice}/phone", "private reply", extra=f"<private xmlns='{CARBONS}'/>")
    send_message(phone, bob, "marker")
    assert [(await other.next_message())["body"] for _ in range(3)] == ["secret", "no copy", "marker"]
    assert (await phone.next_message())["body"] == "private reply"
    carbon = copied(await next_raw(laptop), "sent")
    assert carbon is not None and carbon.findtext("{jabber:client}body") == "marker"


async def test_disabled_resource_gets_no_copies(harness: Harness) -> None:
    alice, bob, phone, laptop, other = await two_resources(harness)
    laptop_client = harness.clients[1]
    await iq(laptop_client, "set", f"<disable xmlns='{CARBONS}'/>")
    send_message(phone, bob, "not copied")
    await other.next_message()
    # a chat state without body (eligible) from bob to the phone, then a marker to the laptop itself
    send_message(other, f"{alice}/phone", None, extra="<active xmlns='http://jabber.org/protocol/chatstates'/>")
    send_message(other, f"{alice}/laptop", "direct")
    assert (await next_raw(laptop)).findtext("{jabber:client}body") == "direct"
