"""Multi-user chat (XEP-0045 and friends) against a real server with real slixmpp clients."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from slixmpp import JID
from slixmpp.exceptions import IqError, PresenceError
from slixmpp.xmlstream import ET

from tests.integration.harness import Client, Harness, start_harness

NS_USER = "http://jabber.org/protocol/muc#user"


def conference(h: Harness) -> str:
    return f"conference.{h.domain}"


async def muc_client(h: Harness, name: str, *, create: bool = True) -> Client:
    """A logged-in client with the MUC, MAM and direct-invitation plugins."""
    jid = await h.user(name) if create else f"{name}@{h.domain}"
    client = await h.client(jid)
    for plugin in ("xep_0045", "xep_0249", "xep_0313", "xep_0004"):
        client.register_plugin(plugin)
    # The harness queues messages with a body and non-MUC presence; subjects, errors and room presence
    # (which the MUC plugin takes for itself) are wanted here too.
    client.add_event_handler("groupchat_presence", client.presences.put_nowait)
    client.add_event_handler("groupchat_subject", client.messages.put_nowait)
    client.add_event_handler("message_error", client.messages.put_nowait)
    return client


async def raw_iq(client: Client, to: str, kind: str, payload: str) -> Any:
    """Send an IQ with a raw payload (for XEPs without a slixmpp plugin) and await the result."""
    iq = client.make_iq_get(ito=to) if kind == "get" else client.make_iq_set(ito=to)
    iq.append(ET.fromstring(payload))
    return await iq.send(timeout=5)


def codes(stanza: Any) -> set[int]:
    return {int(c.get("code")) for c in stanza.xml.iter(f"{{{NS_USER}}}status")}


async def presence_from(client: Client, jid: str, *, ptype: str | None = None, timeout: float = 5) -> Any:
    """The next presence from `jid` (of `ptype` when given), skipping others."""
    while True:
        pres = await client.next_presence(timeout)
        if pres["from"] == JID(jid) and (ptype is None or pres["type"] == ptype):
            return pres


async def groupchat(client: Client, *, body: str | None = None, timeout: float = 5) -> Any:
    while True:
        msg = await client.next_message(timeout)
        if msg["type"] == "groupchat" and (body is None or msg["body"] == body):
            return msg


async def create_room(owner: Client, room: str, nick: str, **fields: Any) -> None:
    """Join (creating the room), then submit the configuration form with `fields` changed."""
    pres, *_ = await owner.plugin["xep_0045"].join_muc_wait(JID(room), nick, maxstanzas=0, timeout=10)
    assert {110, 201} <= codes(pres)
    form = await owner.plugin["xep_0045"].get_room_config(room)
    values = {f"muc#roomconfig_{k}": v for k, v in fields.items()}
    offered = form.get_fields()
    for var in values:
        assert var in offered, var
    submit = owner.plugin["xep_0004"].make_form("submit")
    for var, value in values.items():
        submit.add_field(var=var, value=value)
    await owner.plugin["xep_0045"].set_room_config(room, submit)


async def test_members_only_moderated_room(harness: Harness) -> None:
    alice, bob, carol, erin = [await muc_client(harness, n) for n in ("alice", "bob", "carol", "erin")]
    dave = await muc_client(harness, "dave")
    room = f"office@{conference(harness)}"
    muc = alice.plugin["xep_0045"]
    await create_room(alice, room, "Alice", roomname="Office", membersonly=True, moderatedroom=True)

    for member in (bob, carol, erin):
        await muc.set_affiliation(room, "member", jid=member.boundjid.bare)
    assert sorted(str(j) for j in await muc.get_affiliation_list(room, "member")) == sorted(
        [bob.boundjid.bare, carol.boundjid.bare, erin.boundjid.bare])

    with pytest.raises(PresenceError) as refused:
        await dave.plugin["xep_0045"].join_muc_wait(JID(room), "Dave", timeout=10)
    assert refused.value.condition == "registration-required"

    pres, *_ = await bob.plugin["xep_0045"].join_muc_wait(JID(room), "Bob", timeout=10)
    assert pres["muc"]["role"] == "participant" and pres["muc"]["affiliation"] == "member"
    await carol.plugin["xep_0045"].join_muc_wait(JID(room), "Carol", timeout=10)

    alice.send_message(mto=room, mbody="hello office", mtype="groupchat")
    for client in (bob, carol):
        msg = await groupchat(client, body="hello office")
        assert msg["from"] == JID(f"{room}/Alice")
        assert msg.xml.find("{urn:xmpp:occupant-id:0}occupant-id") is not None
        assert msg.xml.find("{urn:xmpp:sid:0}stanza-id").get("by") == room

    muc.set_subject(room, "Quarterly numbers")
    subject = await groupchat(bob)
    assert subject["subject"] == "Quarterly numbers"
    bob.send_message(mto=room, mbody="second", mtype="groupchat")
    carol.send_message(mto=room, mbody="third", mtype="groupchat")
    await groupchat(alice, body="third")

    # Voice in a moderated room: a visitor may not speak until voice is granted again.
    await muc.set_role(room, "Carol", "visitor")
    carol.send_message(mto=room, mbody="may I?", mtype="groupchat")
    refused_msg = await carol.next_message()
    while refused_msg["type"] != "error":
        refused_msg = await carol.next_message()
    assert refused_msg["error"]["condition"] == "forbidden"
    await muc.set_role(room, "Carol", "participant")

    # History on join: the newest two messages, delayed, then the subject.
    _pres, subject_msg, _occupants, history = await erin.plugin["xep_0045"].join_muc_wait(
        JID(room), "Erin", maxstanzas=2, timeout=10)
    assert [m["body"] for m in history] == ["second", "third"]
    assert all(m["delay"]["stamp"] is not None for m in history)
    assert subject_msg["subject"] == "Quarterly numbers"

    # Kick: the kicked occupant and the others see 307.
    await muc.set_role(room, "Carol", "none", reason="off topic")
    kicked = await presence_from(carol, f"{room}/Carol", ptype="unavailable")
    assert {110, 307} <= codes(kicked)
    seen = await presence_from(bob, f"{room}/Carol", ptype="unavailable")
    assert 307 in codes(seen) and 110 not in codes(seen)

    # Ban: 301, and the banned account cannot come back.
    await muc.set_affiliation(room, "outcast", jid=bob.boundjid.bare, reason="spam")
    banned = await presence_from(bob, f"{room}/Bob", ptype="unavailable")
    assert {110, 301} <= codes(banned)
    with pytest.raises(PresenceError) as again:
        await bob.plugin["xep_0045"].join_muc_wait(JID(room), "Bob", timeout=10)
    assert again.value.condition == "forbidden"
    assert [str(j) for j in await muc.get_affiliation_list(room, "outcast")] == [bob.boundjid.bare]


async def test_persistent_room_and_archive_survive_restart(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        alice = await muc_client(h, "alice")
        await h.user("bob")
        room = f"lasting@{conference(h)}"
        await create_room(alice, room, "Alice", persistentroom=True, roomname="Lasting")
        await alice.plugin["xep_0045"].set_affiliation(room, "admin", jid=f"bob@{h.domain}")
        for n in range(3):
            alice.send_message(mto=room, mbody=f"kept {n}", mtype="groupchat")
            await groupchat(alice, body=f"kept {n}")
    finally:
        await h.close()

    h = await start_harness(tmp_path)
    try:
        bob = await muc_client(h, "bob", create=False)
        _pres, _subject, _occ, history = await bob.plugin["xep_0045"].join_muc_wait(
            JID(room), "Bob", timeout=10)
        assert [m["body"] for m in history] == ["kept 0", "kept 1", "kept 2"]
        assert _pres["muc"]["affiliation"] == "admin"
        result = await bob.plugin["xep_0313"].retrieve(jid=JID(room))
        bodies = [r["mam_result"]["forwarded"]["stanza"]["body"] for r in result["mam"]["results"]]
        assert bodies == ["kept 0", "kept 1", "kept 2"]
        items = await bob.plugin["xep_0030"].get_items(jid=conference(h))
        assert (room, None, "Lasting") in items["disco_items"]["items"]
        info = await bob.plugin["xep_0030"].get_info(jid=room)
        assert "muc_persistent" in info["disco_info"]["features"]
        form = info["disco_info"]["form"]
        assert form["values"]["muc#roominfo_occupants"] == "1"
    finally:
        await h.close()


async def test_nick_conflict_password_and_registration(harness: Harness) -> None:
    alice, bob, carol = [await muc_client(harness, n) for n in ("alice", "bob", "carol")]
    room = f"secret@{conference(harness)}"
    await create_room(alice, room, "Alice", passwordprotectedroom=True, roomsecret="sesame")

    with pytest.raises(PresenceError) as no_password:
        await bob.plugin["xep_0045"].join_muc_wait(JID(room), "Bob", timeout=10)
    assert no_password.value.condition == "not-authorized"
    await bob.plugin["xep_0045"].join_muc_wait(JID(room), "Bob", password="sesame", timeout=10)

    with pytest.raises(PresenceError) as taken:
        await carol.plugin["xep_0045"].join_muc_wait(JID(room), "Bob", password="sesame", timeout=10)
    assert taken.value.condition == "conflict"

    # Nickname registration: Bob reserves "Bobby"; Carol cannot take it.
    form = await raw_iq(bob, room, "get", "<query xmlns='jabber:iq:register'/>")
    assert form.xml.find(".//{jabber:x:data}field[@var='muc#register_roomnick']") is not None
    await raw_iq(bob, room, "set", (
        "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"
        "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>"
        "<field var='muc#register_roomnick'><value>Bobby</value></field></x></query>"))
    registered = await raw_iq(bob, room, "get", "<query xmlns='jabber:iq:register'/>")
    assert registered.xml.findtext(".//{jabber:iq:register}username") == "Bobby"
    with pytest.raises(PresenceError) as reserved:
        await carol.plugin["xep_0045"].join_muc_wait(JID(room), "Bobby", password="sesame", timeout=10)
    assert reserved.value.condition == "conflict"

    # Self-ping (XEP-0410): answered by the room for a joined nickname, refused otherwise.
    await bob.plugin["xep_0199"].send_ping(f"{room}/Bob", timeout=5)
    with pytest.raises(IqError) as not_joined:
        await carol.plugin["xep_0199"].send_ping(f"{room}/Carol", timeout=5)
    assert not_joined.value.condition == "not-acceptable"



async def test_nick_change_names_the_new_nick_on_the_303_item(harness: Harness) -> None:
    """XEP-0045 §7.6: the unavailable presence under the old nickname carries status 303 and the new
    nickname as the `nick` attribute of its one <item/> (Example 50), for the changer and the others."""
    alice, bob = [await muc_client(harness, n) for n in ("alice", "bob")]
    room = f"lounge@{conference(harness)}"
    await create_room(alice, room, "Alice")
    await bob.plugin["xep_0045"].join_muc_wait(JID(room), "Bob", timeout=10)
    await presence_from(alice, f"{room}/Bob")
    bob.send_presence(pto=f"{room}/Robert")
    for client, own in ((bob, {110}), (alice, set())):
        gone = await presence_from(client, f"{room}/Bob", ptype="unavailable")
        assert codes(gone) == {303} | own
        items = gone.xml.findall(f"{{{NS_USER}}}x/{{{NS_USER}}}item")
        assert [item.get("nick") for item in items] == ["Robert"]
        assert list(items[0]) == []  # no nested <item/>
        assert (await presence_from(client, f"{room}/Robert"))["type"] == "available"



async def test_leaving_with_a_status_tells_the_others_why(harness: Harness) -> None:
    """XEP-0045 §7.14: the unavailable presence the service broadcasts carries the leaver's <status/>
    (slixmpp's test_nick_change_leave checks it)."""
    alice, bob = [await muc_client(harness, n) for n in ("alice", "bob")]
    room = f"exit@{conference(harness)}"
    await create_room(alice, room, "Alice")
    await bob.plugin["xep_0045"].join_muc_wait(JID(room), "Bob", timeout=10)
    await presence_from(alice, f"{room}/Bob")
    bob.plugin["xep_0045"].leave_muc(JID(room), "Bob", "boooring")
    gone = await presence_from(alice, f"{room}/Bob", ptype="unavailable")
    assert gone["status"] == "boooring"
    assert [item.get("role") for item in gone.xml.iter(f"{{{NS_USER}}}item")] == ["none"]


async def test_invitations_moderation_and_destroy(harness: Harness) -> None:
    alice, bob, carol = [await muc_client(harness, n) for n in ("alice", "bob", "carol")]
    room = f"team@{conference(harness)}"
    await create_room(alice, room, "Alice", membersonly=True)

    # Mediated invitation into a members-only room makes the invitee a member.
    alice.plugin["xep_0045"].invite(room, bob.boundjid.bare, reason="standup")
    invite = await bob.next_message()
    assert invite["from"] == JID(room)
    assert invite.xml.find(f"{{{NS_USER}}}x/{{{NS_USER}}}invite").get("from") == alice.boundjid.bare
    await bob.plugin["xep_0045"].join_muc_wait(JID(room), "Bob", timeout=10)

    # Direct invitation (XEP-0249) passes from client to client.
    got_direct: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    carol.add_event_handler("groupchat_direct_invite", lambda m: got_direct.done() or got_direct.set_result(m))
    alice.plugin["xep_0249"].send_invitation(carol.boundjid, room, reason="join us")
    direct = await asyncio.wait_for(got_direct, 5)
    assert direct["groupchat_invite"]["jid"] == JID(room)

    # Moderation (XEP-0425): Alice retracts Bob's message; everyone sees the retraction.
    bob.send_message(mto=room, mbody="oops", mtype="groupchat")
    sent = await groupchat(alice, body="oops")
    stanza_id = sent.xml.find("{urn:xmpp:sid:0}stanza-id").get("id")
    await raw_iq(alice, room, "set", (
        f"<moderate xmlns='urn:xmpp:message-moderate:1' id='{stanza_id}'>"
        "<retract xmlns='urn:xmpp:message-retract:1'/><reason>spam</reason></moderate>"))
    while True:
        notice = await groupchat(bob)
        retract = notice.xml.find("{urn:xmpp:message-retract:1}retract")
        if retract is not None:
            break
    assert retract.get("id") == stanza_id
    # ... and in XEP-0425 0.2's fastening form, for clients (and slixmpp's itests) that read only that
    legacy = notice.xml.find("{urn:xmpp:fasten:0}apply-to")
    assert legacy is not None and legacy.get("id") == stanza_id
    assert legacy.find("{urn:xmpp:message-moderate:0}moderated/{urn:xmpp:message-retract:0}retract") is not None
    assert legacy.findtext("{urn:xmpp:message-moderate:0}moderated/{urn:xmpp:message-moderate:0}reason") == "spam"
    archived = await bob.plugin["xep_0313"].retrieve(jid=JID(room))
    tombstone = archived["mam"]["results"][-1]["mam_result"]["forwarded"]["stanza"]
    assert tombstone.xml.find("{urn:xmpp:message-retract:1}retracted") is not None
    assert tombstone["body"] == ""

    # Destruction with an alternate venue.
    await alice.plugin["xep_0045"].destroy(room, reason="moved", altroom=f"elsewhere@{conference(harness)}")
    gone = await presence_from(bob, f"{room}/Bob", ptype="unavailable")
    destroy = gone.xml.find(f"{{{NS_USER}}}x/{{{NS_USER}}}destroy")
    assert destroy.get("jid") == f"elsewhere@{conference(harness)}"
    assert destroy.findtext(f"{{{NS_USER}}}reason") == "moved"
    with pytest.raises(IqError) as missing:
        await bob.plugin["xep_0030"].get_info(jid=room)
    assert missing.value.condition == "item-not-found"


async def test_occupant_leaves_when_session_ends(harness: Harness) -> None:
    alice, bob = [await muc_client(harness, n) for n in ("alice", "bob")]
    room = f"lobby@{conference(harness)}"
    await create_room(alice, room, "Alice")
    await bob.plugin["xep_0045"].join_muc_wait(JID(room), "Bob", timeout=10)
    bob.disconnect()
    left = await presence_from(alice, f"{room}/Bob", ptype="unavailable")
    assert left["muc"]["role"] == "none"
