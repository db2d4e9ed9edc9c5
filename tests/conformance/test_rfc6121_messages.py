"""RFC 6121 §8.5: which resources a message goes to, for every type and address form, and offline
storage (§8.5.2.2)."""

from __future__ import annotations

from tests.conformance.client import NS, XmppStream, assert_stanza_error, connect, q, stanza_error
from tests.conformance.conftest import ServerInfo, xfail_on
from tests.conformance.im import fresh_users, priority, settle


def body_is(text: str) -> object:
    return lambda e: e.tag == q("c:message") and e.findtext(q("c:body")) == text


def msg_id(text: str) -> str:
    return text.replace(" ", "-")


def error_for(text: str) -> object:
    """The error answering the message sent with `text` (matched by id: an error need not carry the body)."""
    return lambda e: e.tag == q("c:message") and e.get("type") == "error" and e.get("id") == msg_id(text)


async def message(sender: XmppStream, to: str, mtype: str, text: str) -> None:
    await sender.send(f"<message to='{to}' type='{mtype}' id='{msg_id(text)}'><body>{text}</body></message>")


async def test_bare_jid_messages_by_type_and_priority(server: ServerInfo) -> None:
    # §8.5.2.1.1, several available resources: "normal"/"chat" go to the most available non-negative
    # resource(s) or to all non-negative ones, never to a negative-priority resource; "headline" goes to
    # all non-negative resources; "groupchat" is refused (SHOULD be service-unavailable); "error" is
    # silently ignored.
    sender, user = await fresh_users(server, 2)
    bare = server.jid(user)
    async with connect(server, user, roster=True) as low, connect(server, user, roster=True) as high, \
            connect(server, user, roster=True) as negative, connect(server, sender, presence=True) as s:
        await low.send(priority(1))
        await high.send(priority(5))
        await negative.send(priority(-1))
        await settle(low, high, negative)
        for mtype in ("normal", "chat"):
            await message(s, bare, mtype, f"to bare {mtype}")
            await high.expect(body_is(f"to bare {mtype}"))
        await message(s, bare, "headline", "news")
        await high.expect(body_is("news"))
        await low.expect(body_is("news"))
        await message(s, bare, "groupchat", "gc")
        err = await s.expect(error_for("gc"))
        assert stanza_error(err)[1] == "service-unavailable"
        await message(s, bare, "error", "err")
        await settle(s)
        await negative.assert_nothing(lambda e: e.tag == q("c:message"))
        await low.assert_nothing(lambda e: e.tag == q("c:message") and e.findtext(q("c:body")) in ("gc", "err"))
        await high.assert_nothing(lambda e: e.tag == q("c:message") and e.findtext(q("c:body")) in ("gc", "err"))
        await s.assert_nothing(error_for("err"))


async def test_tied_priorities_get_chat_on_at_least_one_resource(server: ServerInfo) -> None:
    # §8.5.2.1.1: with several resources at the same (highest) priority the server delivers to one of
    # them or to all; the message is never lost or bounced.
    sender, user = await fresh_users(server, 2)
    async with connect(server, user, roster=True) as one, connect(server, user, roster=True) as two, \
            connect(server, sender, presence=True) as s:
        await one.send(priority(3))
        await two.send(priority(3))
        await settle(one, two)
        await message(s, server.jid(user), "chat", "tie")
        await settle(s, one, two)
        got = [c for c in (one, two) if any(body_is("tie")(e) for e in c.inbox)]
        assert got, "the chat message reached no resource"
        await s.assert_nothing(error_for("tie"))


async def test_full_jid_of_an_existing_resource_gets_every_type(server: ServerInfo) -> None:
    # §8.5.3.1: "If an available resource or connected resource exactly matches the full JID ... For a
    # message stanza, the server MUST deliver the stanza to the resource." Negative priority, or no
    # presence at all, does not matter.
    sender, user = await fresh_users(server, 2)
    async with connect(server, user, roster=True) as negative, connect(server, user, roster=True) as quiet, \
            connect(server, sender, presence=True) as s:
        await negative.send(priority(-5))
        await settle(negative)
        for target in (negative, quiet):
            for mtype in ("normal", "chat", "headline", "groupchat"):
                await message(s, target.jid, mtype, f"{mtype} to full")
                await target.expect(body_is(f"{mtype} to full"))
        await s.assert_nothing(lambda e: e.tag == q("c:message") and e.get("type") == "error")


async def test_full_jid_of_an_unknown_resource(server: ServerInfo) -> None:
    # §8.5.3.2.1: no resource matches. "chat" is handled as for the bare JID (delivered to the one
    # available non-negative resource); "groupchat" and "headline" are silently ignored or answered with an
    # error (SHOULD be service-unavailable), never given to another resource; "error" is ignored.
    sender, user = await fresh_users(server, 2)
    gone = server.jid(user, "gone")
    async with connect(server, user, roster=True, presence=True) as c, connect(server, sender, presence=True) as s:
        await settle(c)
        await message(s, gone, "chat", "chat to gone")
        await c.expect(body_is("chat to gone"))
        for mtype in ("groupchat", "headline", "error"):
            await message(s, gone, mtype, f"{mtype} to gone")
        await settle(s, c)
        await c.assert_nothing(lambda e: e.tag == q("c:message") and e.findtext(q("c:body")).endswith(" to gone")
                               and e.get("type") != "chat")
        for e in s.inbox:
            if e.tag == q("c:message") and e.get("type") == "error":
                assert e.get("id") in (msg_id("groupchat to gone"), msg_id("headline to gone")), e
                assert stanza_error(e)[1] == "service-unavailable"


NORMAL_AS_BARE = ("RFC 6121 §8.5.3.2.1: 'For a message stanza of type \"normal\", \"groupchat\", or \"headline\", "
                  "the server MUST either (a) silently ignore the stanza or (b) return an error stanza': {} handles "
                  "\"normal\" like \"chat\" and delivers it to another resource")


@xfail_on("ejabberd", reason=NORMAL_AS_BARE.format("ejabberd"))
@xfail_on("prosody", reason=NORMAL_AS_BARE.format("Prosody"))
async def test_normal_message_to_an_unknown_resource_is_not_rerouted(server: ServerInfo) -> None:
    sender, user = await fresh_users(server, 2)
    async with connect(server, user, roster=True, presence=True) as c, connect(server, sender, presence=True) as s:
        await settle(c)
        await message(s, server.jid(user, "gone"), "normal", "normal to gone")
        await settle(s, c)
        await c.assert_nothing(body_is("normal to gone"))


async def test_messages_to_a_missing_account(server: ServerInfo) -> None:
    # §8.5.1 (no such user): an IQ gets service-unavailable (MUST); a message is silently ignored or
    # answered with service-unavailable; presence is silently ignored.
    (sender,) = await fresh_users(server, 1)
    ghost = f"ghost-{sender}@{server.domain}"
    async with connect(server, sender, presence=True) as s:
        reply = await s.iq(f"<iq type='get' to='{ghost}'><query xmlns='{NS['version']}'/></iq>")
        assert_stanza_error(reply, None, "service-unavailable")
        reply = await s.iq(f"<iq type='get' to='{ghost}/res'><query xmlns='{NS['version']}'/></iq>")
        assert_stanza_error(reply, None, "service-unavailable")
        for mtype in ("normal", "chat", "headline", "groupchat"):
            await message(s, ghost, mtype, f"{mtype} to ghost")
        await s.send(f"<presence to='{ghost}'/>")
        await settle(s)
        for e in s.drain():
            if e.tag == q("c:message") and e.get("type") == "error":
                assert stanza_error(e)[1] == "service-unavailable", e
            assert not (e.tag == q("c:presence") and e.get("type") == "error"), e


async def test_offline_storage_by_message_type(server: ServerInfo) -> None:
    # §8.5.2.2.1, no available resource: "normal" and "chat" are stored offline (or refused with an
    # error); "headline" is silently ignored; "groupchat" gets an error (SHOULD be service-unavailable);
    # "error" is silently ignored. A resource with negative priority counts as unavailable for this
    # (§8.5.2.1.1), so a session with priority -1 does not take them either.
    sender, user = await fresh_users(server, 2)
    async with connect(server, sender, presence=True) as s:
        async with connect(server, user, roster=True) as negative:
            await negative.send(priority(-1))
            await settle(negative)
            for mtype in ("normal", "chat", "headline", "groupchat", "error"):
                await message(s, server.jid(user), mtype, f"offline {mtype}")
            err = await s.expect(error_for("offline groupchat"))
            assert stanza_error(err)[1] == "service-unavailable"
            await settle(s)
            await negative.assert_nothing(lambda e: e.tag == q("c:message"))
        async with connect(server, user, roster=True, presence=True) as back:
            stored = [await back.expect(body_is(f"offline {t}")) for t in ("normal", "chat")]
            for m in stored:
                assert m.find(q("delay:delay")) is not None  # XEP-0203 stamp on stored messages
            await back.assert_nothing(lambda e: e.tag == q("c:message") and e.findtext(q("c:body")) in
                                      ("offline headline", "offline groupchat", "offline error"))
        await s.assert_nothing(lambda e: e.tag == q("c:message") and e.get("type") == "error")


async def test_bare_jid_message_with_only_connected_resources_waits_offline(server: ServerInfo) -> None:
    # §8.5.2.1.1 delivers to *available* resources; with only a connected resource that has sent no
    # presence, §8.5.2.2.1 applies: "chat" is stored offline (or refused with an error), and delivered
    # once a resource becomes available (XEP-0160).
    sender, user = await fresh_users(server, 2)
    async with connect(server, sender, presence=True) as s, connect(server, user, roster=True) as quiet:
        await message(s, server.jid(user), "chat", "while quiet")
        await settle(s, quiet)
        await s.assert_nothing(error_for("while quiet"))
        await quiet.assert_nothing(body_is("while quiet"))
        await quiet.send("<presence/>")
        await quiet.expect(body_is("while quiet"))


@xfail_on("prosody", reason="XEP-0160 §2 stored messages go out 'when the recipient next sends non-negative "
                            "available presence': Prosody 0.12 only looks at the initial presence")
async def test_offline_messages_wait_for_non_negative_presence(server: ServerInfo) -> None:
    # XEP-0160 §3 / RFC 6121 §8.5.2.1.1: a resource with negative priority does not take stored messages;
    # "when the recipient next sends non-negative available presence" they are delivered.
    sender, user = await fresh_users(server, 2)
    async with connect(server, sender, presence=True) as s:
        await message(s, server.jid(user), "chat", "stored for later")
        await settle(s)
        async with connect(server, user, roster=True) as c:
            await c.send(priority(-1))
            await settle(c)
            await c.assert_nothing(body_is("stored for later"))
            await c.send(priority(1))
            await c.expect(body_is("stored for later"))


async def test_iq_to_a_users_bare_jid_is_answered_by_the_server(server: ServerInfo) -> None:
    # §8.5.2.1.3: "For an IQ stanza, the server itself MUST reply on behalf of the user with either an IQ
    # result or an IQ error"; nothing reaches the user's resources. For a payload it does not handle on
    # the account's behalf that is service-unavailable (RFC 6120 §8.4).
    sender, user = await fresh_users(server, 2)
    async with connect(server, user, roster=True, presence=True) as c, connect(server, sender, presence=True) as s:
        for iq_type in ("get", "set"):
            reply = await s.iq(f"<iq type='{iq_type}' to='{server.jid(user)}'><query xmlns='urn:example:none'/></iq>")
            assert_stanza_error(reply, "cancel", "service-unavailable")
            assert reply.get("from") == server.jid(user)
        await c.assert_nothing(lambda e: e.tag == q("c:iq") and e.get("from", "").startswith(server.jid(sender)))
