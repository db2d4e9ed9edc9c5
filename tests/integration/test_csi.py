"""Client state indication (XEP-0352) against a real server: an inactive client gets presence updates
(the newest per contact) and bare chat states only when something urgent comes or it is active again."""

from __future__ import annotations

from typing import Any

from lxml import etree

from appliance.storage.api import RosterItem
from appliance.xmpp.ns import NS_CHATSTATES, NS_CLIENT, NS_CSI
from tests.integration.harness import Harness
from tests.integration.test_hostile import RawClient

MESSAGE = f"{{{NS_CLIENT}}}message"
PRESENCE = f"{{{NS_CLIENT}}}presence"


async def make_contacts(harness: Harness) -> tuple[RawClient, Any, str]:
    """alice (a raw client that can go inactive) and bob (slixmpp), subscribed to each other."""
    alice_jid = await harness.user("alice")
    bob_jid = await harness.user("bob")
    roster = harness.server.stores.roster  # type: ignore[union-attr]
    await roster.put(harness.domain, "alice", RosterItem(bob_jid, subscription="both"))
    await roster.put(harness.domain, "bob", RosterItem(alice_jid, subscription="both"))
    raw = await RawClient.connect(harness)
    await raw.authenticate(harness, "alice")
    await raw.bind("raw")
    await raw.send(f"<presence xmlns='{NS_CLIENT}'/>")
    bob = await harness.client(bob_jid)
    await next_of(raw, PRESENCE)  # bob's initial presence: both are online
    return raw, bob, bob_jid


async def next_of(raw: RawClient, *tags: str) -> etree._Element:
    while True:
        element = await raw.element()
        if element.tag in tags:
            return element


async def test_inactive_client_gets_newest_presence_and_chat_states_with_the_next_message(
    harness: Harness,
) -> None:
    raw, bob, bob_jid = await make_contacts(harness)
    await raw.send(f"<inactive xmlns='{NS_CSI}'/>")
    for show in ("away", "xa", "dnd"):
        bob.send_presence(pshow=show)
    composing = etree.Element(MESSAGE, nsmap={None: NS_CLIENT})
    composing.set("to", "alice@localhost/raw")
    composing.set("type", "chat")
    etree.SubElement(composing, f"{{{NS_CHATSTATES}}}composing", nsmap={None: NS_CHATSTATES})
    bob.send_raw(etree.tostring(composing).decode())
    bob.send_message(mto="alice@localhost/raw", mtype="chat", mbody="urgent")

    seen: list[str] = []
    while "urgent" not in seen:
        element = await next_of(raw, MESSAGE, PRESENCE)
        if element.tag == PRESENCE and element.get("from", "").startswith(bob_jid):
            seen.append("presence:" + (element.findtext(f"{{{NS_CLIENT}}}show") or ""))
        elif element.tag == MESSAGE:
            body = element.findtext(f"{{{NS_CLIENT}}}body")
            seen.append(body if body else "chatstate")
    # Only the newest presence of bob was kept; held stanzas come first, in order, then the message.
    assert seen[-1] == "urgent"
    assert [s for s in seen if s.startswith("presence:")][-1] == "presence:dnd"
    assert "presence:away" not in seen and "presence:xa" not in seen
    assert "chatstate" in seen and seen.index("chatstate") < seen.index("urgent")
    await raw.close()


async def test_going_active_flushes_held_presence(harness: Harness) -> None:
    raw, bob, bob_jid = await make_contacts(harness)
    await raw.send(f"<inactive xmlns='{NS_CSI}'/>")
    bob.send_presence(pshow="away")
    # Nothing urgent follows: the update arrives once the client says it is active again. The ping
    # makes sure the server has handled the presence before we go active.
    await bob.plugin["xep_0199"].ping(harness.domain)
    await raw.send(f"<active xmlns='{NS_CSI}'/>")
    while True:
        element = await next_of(raw, PRESENCE)
        if element.get("from", "").startswith(bob_jid) and element.findtext(f"{{{NS_CLIENT}}}show") == "away":
            break
    await raw.close()
