"""XEP-0030 Service Discovery (2.5rc3) and XEP-0157 Contact Addresses, from the texts."""

from __future__ import annotations

from tests.conformance.client import NS, assert_stanza_error, connect, q, register_account
from tests.conformance.conftest import ServerInfo, xfail_on
from tests.conformance.contacts import assert_result, bare, subscribe
from tests.conformance.contacts import get_iq as _get

INFO = f"<query xmlns='{NS['disco']}'/>"
ITEMS = f"<query xmlns='{NS['items']}'/>"


async def test_server_info_has_identity_and_disco_feature(server: ServerInfo) -> None:
    # §3.1: the result has one or more identities (category and type) and features (each with 'var');
    # every entity MUST support the disco#info feature. A server's identity is server/im (registry).
    async with connect(server, "alice") as c:
        reply = await c.iq(_get(server.domain, INFO))
    assert reply.get("type") == "result" and reply.get("from") == server.domain
    query = reply.find(q("disco:query"))
    assert query is not None
    identities = query.findall(q("disco:identity"))
    assert identities and all(i.get("category") and i.get("type") for i in identities)
    assert ("server", "im") in {(i.get("category"), i.get("type")) for i in identities}
    features = query.findall(q("disco:feature"))
    assert all(f.get("var") for f in features)
    assert NS["disco"] in {f.get("var") for f in features}


async def test_server_items_each_have_a_jid(server: ServerInfo) -> None:
    # §4.1: each <item/> MUST possess a 'jid' attribute; no items → an empty <query/>.
    async with connect(server, "alice") as c:
        reply = await c.iq(_get(server.domain, ITEMS))
    assert reply.get("type") == "result"
    query = reply.find(q("items:query"))
    assert query is not None
    assert all(item.get("jid") for item in query.findall(q("items:item")))


async def test_unknown_node_on_server_is_item_not_found(server: ServerInfo) -> None:
    # §7 Error Conditions: the JID+NodeID does not exist → <item-not-found/>.
    async with connect(server, "alice") as c:
        for ns in (NS["disco"], NS["items"]):
            reply = await c.iq(_get(server.domain, f"<query xmlns='{ns}' node='no-such-node-xyz'/>"))
            assert_stanza_error(reply, "cancel", "item-not-found")


@xfail_on("prosody", reason="XEP-0030 §3.1: every entity MUST support the disco#info feature; Prosody's "
          "answer for a bare JID lists only the PEP features")
async def test_own_bare_jid_info_is_an_account(server: ServerInfo) -> None:
    # §3.1: a disco#info to a bare JID is answered by the server on the account's behalf; the primary
    # identity SHOULD be account/registered, and disco#info MUST be among the features.
    async with connect(server, "alice") as c:
        reply = await c.iq(_get(server.jid("alice"), INFO))
    assert reply.get("type") == "result" and reply.get("from") == server.jid("alice")
    query = reply.find(q("disco:query"))
    assert query is not None
    assert "account" in {i.get("category") for i in query.findall(q("disco:identity"))}
    assert NS["disco"] in {f.get("var") for f in query.findall(q("disco:feature"))}


@xfail_on("ejabberd", reason="XEP-0030 §8 rule 1: ejabberd answers <subscription-required/>, where the "
          "text says MUST <service-unavailable/>")
async def test_bare_jid_info_without_subscription_is_service_unavailable(server: ServerInfo) -> None:
    # §8 rule 1.2: the requester is not authorized to receive the target's presence → the server MUST
    # return <service-unavailable/>.
    stranger = await register_account(server)
    async with connect(server, stranger) as c:
        reply = await c.iq(_get(server.jid("dave"), INFO))
    assert_stanza_error(reply, "cancel", "service-unavailable")


@xfail_on("ejabberd", reason="XEP-0030 §8 rule 1: ejabberd answers <subscription-required/>, where the "
          "text says MUST <service-unavailable/>")
async def test_bare_jid_info_of_missing_account_is_service_unavailable(server: ServerInfo) -> None:
    # §8 rule 1.1: the target does not exist (with or without a node) → MUST <service-unavailable/>.
    async with connect(server, "alice") as c:
        for node in ("", " node='x'"):
            reply = await c.iq(_get(server.jid("nobody-here-xyz"), f"<query xmlns='{NS['disco']}'{node}/>"))
            assert_stanza_error(reply, "cancel", "service-unavailable")


@xfail_on("ejabberd", "prosody", reason="XEP-0030 §8 rule 2: the peers answer an error (ejabberd "
          "subscription-required, Prosody service-unavailable), where the text says MUST return an empty result")
async def test_bare_jid_items_of_missing_account_is_empty(server: ServerInfo) -> None:
    # §8 rule 2.1: disco#items to a bare JID that does not exist → the server MUST return an empty result.
    async with connect(server, "alice") as c:
        reply = await c.iq(_get(server.jid("nobody-here-xyz"), ITEMS))
    query = assert_result(reply, "items:query")
    assert query is not None and len(query) == 0


@xfail_on("ejabberd", "prosody", reason="XEP-0030 §8 rule 2: the peers answer an error (ejabberd "
          "subscription-required, Prosody service-unavailable), where the text says MUST return an empty result")
async def test_bare_jid_items_without_subscription_is_empty(server: ServerInfo) -> None:
    # §8 rule 2.2: no node, the requester may not see the target's presence → MUST be an empty result
    # (never available resources), even while the target is online.
    stranger = await register_account(server)
    async with connect(server, "dave", presence=True), connect(server, stranger) as c:
        reply = await c.iq(_get(server.jid("dave"), ITEMS))
    query = assert_result(reply, "items:query")
    assert query is not None
    assert not [i for i in query.findall(q("items:item")) if (i.get("jid") or "").startswith(server.jid("dave") + "/")]


async def test_bare_jid_info_for_a_subscriber(server: ServerInfo) -> None:
    # §3.1 and §8: once the requester may see the target's presence, the server answers for the account.
    watcher_name, target_name = await register_account(server), await register_account(server)
    async with connect(server, watcher_name, roster=True, presence=True) as watcher, \
            connect(server, target_name, roster=True, presence=True) as target:
        await subscribe(watcher, target)
        reply = await watcher.iq(_get(bare(target), INFO))
    assert reply.get("type") == "result"
    assert "account" in {i.get("category") for i in reply.iter(q("disco:identity"))}


async def test_full_jid_query_is_forwarded_to_the_client(server: ServerInfo) -> None:
    # §3.1 (querying a connected resource) and RFC 6120 §10.5.4: an IQ to a full JID goes to that client,
    # whose answer comes back to the requester.
    async with connect(server, "bob", presence=True) as bob, connect(server, "alice") as alice:
        await alice.send(f"<iq type='get' id='fwd1' to='{bob.jid}'>{INFO}</iq>")
        request = await bob.expect("self::c:iq[@id='fwd1']")
        assert request.get("from") == alice.jid and request.get("type") == "get"
        await bob.send(
            f"<iq type='result' id='fwd1' to='{alice.jid}'><query xmlns='{NS['disco']}'>"
            "<identity category='client' type='pc'/></query></iq>"
        )
        reply = await alice.expect("self::c:iq[@id='fwd1']")
    assert reply.get("type") == "result" and reply.get("from") == bob.jid
    assert reply.find(f"{q('disco:query')}/{q('disco:identity')}").get("type") == "pc"


async def test_full_jid_without_session_is_service_unavailable(server: ServerInfo) -> None:
    # RFC 6121 §8.5.3.2.1 / RFC 6120 §10.5.3.2: an IQ to a full JID with no such resource → service-unavailable.
    async with connect(server, "alice") as c:
        reply = await c.iq(_get(server.jid("bob", "no-such-resource"), INFO))
    assert_stanza_error(reply, "cancel", "service-unavailable")


async def test_contact_addresses_form(server: ServerInfo) -> None:
    # XEP-0157 §2 (with XEP-0128): the server's disco#info carries a result form whose hidden FORM_TYPE is
    # http://jabber.org/network/serverinfo and whose <role>-addresses fields hold the URIs.
    async with connect(server, "alice") as c:
        reply = await c.iq(_get(server.domain, INFO))
    forms = [x for x in reply.iter(q("data:x"))
             if x.findtext(f"{q('data:field')}[@var='FORM_TYPE']/{q('data:value')}") == "http://jabber.org/network/serverinfo"]
    assert len(forms) == 1
    form = forms[0]
    assert form.get("type") == "result"
    assert form.find(f"{q('data:field')}[@var='FORM_TYPE']").get("type") == "hidden"
    fields = {f.get("var"): [v.text for v in f.findall(q("data:value"))] for f in form.findall(q("data:field"))}
    assert fields["abuse-addresses"] == [f"mailto:abuse@{server.domain}"]
    assert fields["admin-addresses"] == [f"xmpp:admin@{server.domain}"]
