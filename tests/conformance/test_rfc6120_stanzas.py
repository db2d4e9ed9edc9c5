"""RFC 6120 §8 and §10: 'from' stamping, spoofing, IQ semantics, errors, local delivery rules."""

from __future__ import annotations

import uuid

import pytest
from lxml import etree

from tests.conformance.client import (
    NS,
    assert_stanza_error,
    connect,
    new_id,
    q,
    raw_open,
    stanza_error,
    to_string,
)
from tests.conformance.conftest import ServerInfo, xfail_on

UNKNOWN = "urn:example:conformance:unknown"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def _is_iq(iq_id: str):  # type: ignore[no-untyped-def]
    return lambda e: e.tag == q("c:iq") and e.get("id") == iq_id


async def test_server_stamps_full_jid_as_from(server: ServerInfo) -> None:
    # §8.1.2.1: the server MUST add a 'from' (or override the client's) with the full JID of the sender.
    async with connect(server, "alice") as alice, connect(server, "bob") as bob:
        body = uuid.uuid4().hex
        await alice.send(f"<message to='{bob.jid}' type='chat'><body>{body}</body></message>")
        msg = await bob.expect(f"self::c:message[c:body='{body}']")
        assert msg.get("from") == alice.jid
        # a bare own JID as 'from' is replaced by the full JID, too
        body = uuid.uuid4().hex
        await alice.send(f"<message from='{server.jid('alice')}' to='{bob.jid}' type='chat'>"
                         f"<body>{body}</body></message>")
        msg = await bob.expect(f"self::c:message[c:body='{body}']")
        assert msg.get("from") == alice.jid


async def test_spoofed_from_never_reaches_the_recipient(server: ServerInfo) -> None:
    # §8.1.2.1: the server MUST override the 'from' with the sender's JID, or (§4.9.3.10 invalid-from:
    # "The data provided in a 'from' attribute does not match an authorized JID") close the stream.
    async with connect(server, "alice") as alice, connect(server, "bob") as bob:
        body = uuid.uuid4().hex
        await alice.send(f"<message from='{server.jid('carol', 'x')}' to='{bob.jid}' type='chat'>"
                         f"<body>{body}</body></message>")
        try:
            await alice.sync()  # alice's stanzas are handled in order: the message went before the ping
        except AssertionError:
            await alice.expect_stream_error("invalid-from")  # the other allowed outcome
            return
        await bob.sync()
        got = [m for m in bob.inbox if m.findtext(q("c:body")) == body]
        assert got and got[0].get("from") == alice.jid, [to_string(m) for m in got]
        for m in bob.inbox:
            assert not (m.get("from") or "").startswith(server.jid("carol")), to_string(m)


async def test_iq_without_id_is_bad_request(server: ServerInfo) -> None:
    # §8.2.3: "The 'id' attribute is REQUIRED for IQ stanzas"; §8.3.3.1 bad-request ("a stanza ... that
    # cannot be processed").
    async with connect(server, "alice") as c:
        await c.send(f"<iq type='get' to='{server.domain}'><query xmlns='{NS['disco']}'/></iq>")
        reply = await c.expect(lambda e: e.tag == q("c:iq") and e.get("type") == "error")
        assert_stanza_error(reply, "modify", "bad-request")


async def test_iq_with_unknown_type_is_bad_request(server: ServerInfo) -> None:
    # §8.3.3.1 bad-request: "e.g., an IQ stanza that includes an unrecognized value of the 'type' attribute"
    async with connect(server, "alice") as c:
        iq_id = new_id()
        await c.send(f"<iq type='query' id='{iq_id}' to='{server.domain}'><ping xmlns='{NS['ping']}'/></iq>")
        assert_stanza_error(await c.expect(_is_iq(iq_id)), "modify", "bad-request")


@pytest.mark.parametrize("iq", [
    "<iq type='get' to='{domain}'/>",
    "<iq type='set' to='{domain}'><ping xmlns='urn:xmpp:ping'/><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
], ids=["get-no-child", "set-two-children"])
async def test_iq_request_without_exactly_one_child_is_bad_request(server: ServerInfo, iq: str) -> None:
    # §8.2.3 rule 3: "An IQ stanza of type "get" or "set" MUST contain exactly one child element".
    async with connect(server, "alice") as c:
        assert_stanza_error(await c.iq(iq.format(domain=server.domain)), "modify", "bad-request")


async def test_iq_result_and_error_are_never_answered(server: ServerInfo) -> None:
    # §8.2.3 rule 5: "An entity that receives a stanza of type "result" or "error" MUST NOT respond to the
    # stanza by sending a further IQ response of type "result" or "error"".
    async with connect(server, "alice") as c:
        await c.send(f"<iq type='result' id='unsolicited-1' to='{server.domain}'/>")
        await c.send(f"<iq type='error' id='unsolicited-2' to='{server.domain}'><error type='cancel'>"
                     f"<item-not-found xmlns='{NS['stanzas']}'/></error></iq>")
        await c.send(f"<iq type='result' id='unsolicited-3' to='{server.jid('bob')}'/>")
        await c.assert_nothing(lambda e: e.get("id", "").startswith("unsolicited-"))


async def test_unknown_namespace_to_server_is_service_unavailable(server: ServerInfo) -> None:
    # §8.4: an entity receiving an IQ get/set "containing a child element qualified by a namespace it does
    # not understand ... SHOULD return an IQ stanza of type "error" with an error condition of
    # <service-unavailable/>"; the reply comes from the server (§8.2.3 'from' = the 'to' of the request).
    async with connect(server, "alice") as c:
        reply = await c.iq(f"<iq type='get' to='{server.domain}'><query xmlns='{UNKNOWN}'/></iq>")
        assert_stanza_error(reply, "cancel", "service-unavailable")
        assert reply.get("from") == server.domain


async def test_error_carries_one_condition(server: ServerInfo) -> None:
    # §8.3.2: the <error/> element "MUST contain a defined condition element" and only one.
    async with connect(server, "alice") as c:
        reply = await c.iq(f"<iq type='set' to='{server.domain}'><query xmlns='{UNKNOWN}'><x/></query></iq>")
        _type, _cond, err = stanza_error(reply)
        assert err is not None
        conds = [e for e in err if etree.QName(e).namespace == NS["stanzas"] and etree.QName(e).localname != "text"]
        assert len(conds) == 1, to_string(reply)


async def test_iq_to_bare_jid_is_answered_by_the_server_for_the_account(server: ServerInfo) -> None:
    # §10.5.3.2 (user exists, bare JID): "For an IQ stanza, the server MUST handle it directly on behalf of
    # the intended recipient" -> an unknown payload gets service-unavailable from the bare JID, and the
    # online user never sees the request.
    async with connect(server, "alice", presence=True) as alice, connect(server, "bob") as bob:
        iq_id = new_id()
        reply = await bob.iq(f"<iq type='get' id='{iq_id}' to='{server.jid('alice')}'>"
                             f"<query xmlns='{UNKNOWN}'/></iq>")
        assert_stanza_error(reply, "cancel", "service-unavailable")
        assert reply.get("from") == server.jid("alice")
        await alice.assert_nothing(_is_iq(iq_id))


async def test_iq_to_offline_full_jid_is_service_unavailable(server: ServerInfo) -> None:
    # §10.5.3.2 (user exists, full JID, no such resource): "For an IQ stanza, the server MUST return a
    # <service-unavailable/> stanza error to the sender."
    async with connect(server, "bob") as bob:
        reply = await bob.iq(f"<iq type='get' to='{server.jid('alice', 'no-such-resource')}'>"
                             f"<ping xmlns='{NS['ping']}'/></iq>")
        assert_stanza_error(reply, "cancel", "service-unavailable")


@xfail_on("ejabberd", reason="RFC 6120 §10.5.3.1: ejabberd 23.01 answers a disco#info IQ to a bare JID "
                             "without an account with subscription-required instead of service-unavailable")
async def test_iq_to_unknown_account_is_service_unavailable(server: ServerInfo) -> None:
    # §10.5.3.1 (no such user): "For an IQ stanza, the server MUST return a <service-unavailable/> stanza
    # error to the sender."
    async with connect(server, "bob") as bob:
        for to in (server.jid("nosuchuser"), server.jid("nosuchuser", "res")):
            reply = await bob.iq(f"<iq type='get' to='{to}'><query xmlns='{NS['disco']}'/></iq>")
            assert_stanza_error(reply, "cancel", "service-unavailable")


async def test_message_to_unknown_account(server: ServerInfo) -> None:
    # §10.5.3.1: "For a message stanza, the server MUST either (a) silently ignore the message or (b)
    # return a <service-unavailable/> stanza error to the sender."
    async with connect(server, "bob") as bob:
        msg_id = new_id()
        await bob.send(f"<message id='{msg_id}' to='{server.jid('nosuchuser')}' type='chat'><body>x</body></message>")
        await bob.sync()
        for m in bob.inbox:
            if m.get("id") == msg_id:
                assert_stanza_error(m, "cancel", "service-unavailable")


@xfail_on("ejabberd", reason="RFC 6120 §10.5.2: ejabberd 23.01 answers an unknown payload to "
                             "domain/resource with item-not-found instead of service-unavailable")
async def test_iq_to_server_full_jid_is_service_unavailable(server: ServerInfo) -> None:
    # §10.5.2 (domain/resource): the server handles it itself or returns <service-unavailable/>; an
    # unknown payload there is service-unavailable.
    async with connect(server, "bob") as bob:
        reply = await bob.iq(f"<iq type='get' to='{server.domain}/no-such-resource'><query xmlns='{UNKNOWN}'/></iq>")
        assert_stanza_error(reply, "cancel", "service-unavailable")


async def test_iq_to_own_bare_jid_without_to(server: ServerInfo) -> None:
    # §10.3.3 / §8.1.1.1: no 'to' means the account itself; the server answers in its place and the reply
    # carries no 'from' or the bare JID of the account.
    async with connect(server, "alice") as c:
        reply = await c.iq(f"<iq type='get'><query xmlns='{UNKNOWN}'/></iq>")
        assert_stanza_error(reply, "cancel", "service-unavailable")
        assert reply.get("from") in (None, server.jid("alice"), c.jid)


async def test_stream_language_is_stamped_on_stanzas(server: ServerInfo) -> None:
    # §8.1.5: "If an outbound stanza generated by a client does not possess an 'xml:lang' attribute, the
    # client's server SHOULD add an 'xml:lang' attribute whose value is that specified for the stream"
    # (§4.7.4); a stanza's own xml:lang is kept.
    s = await raw_open(server, lang="de")
    try:
        await s.auth_plain("alice", server.password)
        await s.open_stream(lang="de")
        assert (await s.bind(None)).get("type") == "result"
        async with connect(server, "bob") as bob:
            await s.send(f"<message to='{bob.jid}' type='chat'><body>hallo</body></message>")
            await s.send(f"<message to='{bob.jid}' type='chat' xml:lang='fr'><body>salut</body></message>")
            assert (await bob.expect("self::c:message[c:body='hallo']")).get(XML_LANG) == "de"
            assert (await bob.expect("self::c:message[c:body='salut']")).get(XML_LANG) == "fr"
    finally:
        await s.close()


@xfail_on("ejabberd", reason="RFC 6120 §8.3.3.8: ejabberd 23.01 answers a malformed 'to' with bad-request "
                             "instead of jid-malformed")
async def test_malformed_to_is_jid_malformed(server: ServerInfo) -> None:
    # §8.3.3.8 jid-malformed: "The sending entity has provided (e.g., during resource binding) or
    # communicated (e.g., in the 'to' address of a stanza) an XMPP address ... that violates the rules
    # defined in [XMPP-ADDR]".
    async with connect(server, "alice") as c:
        for to in ("bob@", "a@b@" + server.domain, "@" + server.domain):
            reply = await c.iq(f"<iq type='get' to='{to}'><ping xmlns='{NS['ping']}'/></iq>")
            assert_stanza_error(reply, "modify", "jid-malformed")


async def test_error_message_is_never_answered(server: ServerInfo) -> None:
    # §8.3.1 rule 1 / §10.4.3: an entity MUST NOT respond to a stanza of type "error" with an error.
    async with connect(server, "alice") as c:
        await c.send(f"<message type='error' id='err-msg-1' to='{server.jid('nosuchuser')}'>"
                     f"<error type='cancel'><item-not-found xmlns='{NS['stanzas']}'/></error></message>")
        await c.send(f"<message type='error' id='err-msg-2' to='{server.jid('bob', 'offline-res')}'>"
                     f"<error type='cancel'><item-not-found xmlns='{NS['stanzas']}'/></error></message>")
        await c.assert_nothing(lambda e: e.get("id", "").startswith("err-msg-"))


async def test_iq_between_full_jids_is_routed_both_ways(server: ServerInfo) -> None:
    # §8.2.3 and §10.5.3.2: an IQ to an online full JID is delivered to that resource; its result goes back
    # to the requester's full JID with the same id.
    async with connect(server, "alice") as alice, connect(server, "bob") as bob:
        iq_id = new_id()
        await alice.send(f"<iq type='get' id='{iq_id}' to='{bob.jid}'><query xmlns='{UNKNOWN}'/></iq>")
        request = await bob.expect(_is_iq(iq_id))
        assert request.get("from") == alice.jid and request.get("type") == "get"
        await bob.send(f"<iq type='result' id='{iq_id}' to='{alice.jid}'/>")
        reply = await alice.expect(_is_iq(iq_id))
        assert reply.get("type") == "result" and reply.get("from") == bob.jid
