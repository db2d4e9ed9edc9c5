"""XEP-0191 Blocking Command (1.3), from the text."""

from __future__ import annotations

from tests.conformance.client import NS, assert_stanza_error, connect, q, register_account
from tests.conformance.conftest import ServerInfo, xfail_on
from tests.conformance.contacts import assert_result, bare, subscribe

BLK = NS["blocking"]
GET_LIST = f"<iq type='get'><blocklist xmlns='{BLK}'/></iq>"


def _items(elem: object) -> set[str]:
    return {i.get("jid") for i in elem.findall(q("blocking:item"))}  # type: ignore[attr-defined]


async def test_block_unblock_and_pushes(server: ServerInfo) -> None:
    # §3.2 empty <blocklist/>; §3.3 block → result + push to resources that requested the blocklist;
    # §3.4 unblock → push; §3.5 unblock all → push of an empty <unblock/>.
    name = await register_account(server)
    async with connect(server, name) as main, connect(server, name) as other:
        blocklist = assert_result(await main.iq(GET_LIST), "blocking:blocklist")
        assert blocklist is not None and len(blocklist) == 0
        await other.iq(GET_LIST)
        assert_result(await main.iq(f"<iq type='set'><block xmlns='{BLK}'><item jid='x1@{server.domain}'/>"
                                    f"<item jid='x2@{server.domain}'/></block></iq>"))
        for stream in (main, other):
            push = await stream.expect("self::c:iq[@type='set'][blocking:block]")
            assert _items(push.find(q("blocking:block"))) == {f"x1@{server.domain}", f"x2@{server.domain}"}
            await stream.send(f"<iq type='result' id='{push.get('id')}'/>")
        listed = assert_result(await main.iq(GET_LIST), "blocking:blocklist")
        assert _items(listed) == {f"x1@{server.domain}", f"x2@{server.domain}"}
        assert_result(await main.iq(f"<iq type='set'><unblock xmlns='{BLK}'><item jid='x1@{server.domain}'/>"
                                    "</unblock></iq>"))
        push = await other.expect("self::c:iq[@type='set'][blocking:unblock]")
        assert _items(push.find(q("blocking:unblock"))) == {f"x1@{server.domain}"}
        assert_result(await main.iq(f"<iq type='set'><unblock xmlns='{BLK}'/></iq>"))
        push = await other.expect("self::c:iq[@type='set'][blocking:unblock]")
        assert len(push.find(q("blocking:unblock"))) == 0
        listed = assert_result(await main.iq(GET_LIST), "blocking:blocklist")
        assert listed is not None and len(listed) == 0


async def test_empty_block_is_bad_request(server: ServerInfo) -> None:
    # §3.3: a <block/> without <item/> MUST be answered <bad-request/>.
    async with connect(server, "alice") as c:
        reply = await c.iq(f"<iq type='set'><block xmlns='{BLK}'/></iq>")
    assert_stanza_error(reply, "modify", "bad-request")


@xfail_on("ejabberd", reason="RFC 6120 §8.3.3.8 (XEP-0191 §3.3 other errors apply): ejabberd answers "
          "<bad-request/> for a malformed JID")
async def test_malformed_jid_is_jid_malformed(server: ServerInfo) -> None:
    # §3.3 "Other standard XMPP stanza errors also apply": RFC 6120 §8.3.3.8 <jid-malformed/>.
    async with connect(server, "alice") as c:
        reply = await c.iq(f"<iq type='set'><block xmlns='{BLK}'><item jid='a@b@c'/></block></iq>")
    assert_stanza_error(reply, "modify", "jid-malformed")


@xfail_on("ejabberd", reason="XEP-0191 §3.3: an outbound stanza to a blocked contact MUST get <not-acceptable/> "
          "with <blocked xmlns='urn:xmpp:blocking:errors'/>; ejabberd leaves the <blocked/> condition out")
async def test_blocked_contact_is_refused_both_ways(server: ServerInfo) -> None:
    # §3.3: from the blocked contact, presence vanishes without an error, a message SHOULD get
    # <service-unavailable/>, an IQ get/set MUST get an error (SHOULD service-unavailable); to the blocked
    # contact, the user's stanza MUST get <not-acceptable/> with <blocked xmlns='urn:xmpp:blocking:errors'/>.
    user_name, contact_name = await register_account(server), await register_account(server)
    async with connect(server, user_name, roster=True, presence=True) as user, \
            connect(server, contact_name, roster=True, presence=True) as contact:
        await subscribe(user, contact)
        assert_result(await user.iq(f"<iq type='set'><block xmlns='{BLK}'><item jid='{bare(contact)}'/></block></iq>"))
        await contact.send(f"<message to='{bare(user)}' id='m1' type='chat'><body>hello?</body></message>")
        bounced = await contact.expect("self::c:message[@id='m1']")
        assert_stanza_error(bounced, "cancel", "service-unavailable")
        reply = await contact.iq(f"<iq type='get' to='{user.jid}'><ping xmlns='{NS['ping']}'/></iq>")
        assert_stanza_error(reply, "cancel", "service-unavailable")
        await contact.send("<presence><status>still here</status></presence>")
        await contact.assert_nothing("self::c:presence[@type='error']")
        await user.assert_nothing("self::c:presence[c:status='still here'] | self::c:message[@id='m1']")
        await user.send(f"<message to='{bare(contact)}' id='m2' type='chat'><body>hi</body></message>")
        refused = await user.expect("self::c:message[@id='m2']")
        err = assert_stanza_error(refused, None, "not-acceptable")  # the example's type='cancel' is not normative
        assert err.find("{urn:xmpp:blocking:errors}blocked") is not None
        await contact.assert_nothing("self::c:message[@id='m2']")
