"""RFC 6121 §2: roster get, set, update and remove, their error cases, pushes and versioning."""

from __future__ import annotations

from tests.conformance.client import assert_stanza_error, connect, q
from tests.conformance.conftest import ServerInfo, xfail_on
from tests.conformance.im import ROSTER, expect_push, fresh_users, is_push, roster_get, roster_item, roster_set

NO_LIMIT = "RFC 6121 §2.3.3 not-acceptable past 'a server-configured limit': {} has no such limit (accepts 5000)"


async def test_roster_set_with_two_items_is_bad_request(server: ServerInfo) -> None:
    # §2.3.3: "The server MUST return a <bad-request/> stanza error to the client if the roster set
    # contains any of the following violations: 1. The <query/> element contains more than one <item/>".
    (user,) = await fresh_users(server, 1)
    async with connect(server, user, roster=True) as c:
        reply = await c.iq(
            f"<iq type='set'><query xmlns='{ROSTER}'><item jid='x1@{server.domain}'/>"
            f"<item jid='x2@{server.domain}'/></query></iq>"
        )
        assert_stanza_error(reply, "modify", "bad-request")
        assert await roster_item(c, f"x1@{server.domain}") is None
        await c.assert_nothing(is_push())


@xfail_on("prosody", reason="RFC 6121 §2.3.3 bad-request for duplicate groups: Prosody merges them")
async def test_roster_set_with_duplicate_groups_is_bad_request(server: ServerInfo) -> None:
    # §2.3.3: bad-request when "the <item/> element contains more than one <group/> element, but there
    # are duplicate groups (one group name is identical to another group name)".
    (user,) = await fresh_users(server, 1)
    async with connect(server, user, roster=True) as c:
        reply = await c.iq(roster_set(f"dup@{server.domain}", children="<group>Friends</group><group>Friends</group>"))
        assert_stanza_error(reply, "modify", "bad-request")


@xfail_on("prosody", reason="RFC 6121 §2.3.3 not-acceptable for an empty <group/>: Prosody stores it")
@xfail_on("ejabberd", reason="RFC 6121 §2.3.3 not-acceptable for an empty <group/>: ejabberd says bad-request")
async def test_roster_set_with_empty_group_is_not_acceptable(server: ServerInfo) -> None:
    # §2.3.3: "The server MUST return a <not-acceptable/> stanza error to the client if ... The XML
    # character data of the <group/> element is of zero length".
    (user,) = await fresh_users(server, 1)
    async with connect(server, user, roster=True) as c:
        reply = await c.iq(roster_set(f"empty@{server.domain}", children="<group/>"))
        assert_stanza_error(reply, "modify", "not-acceptable")


@xfail_on("prosody", reason=NO_LIMIT.format("Prosody"))
@xfail_on("ejabberd", reason=NO_LIMIT.format("ejabberd"))
async def test_roster_set_with_oversized_name_or_group_is_not_acceptable(server: ServerInfo) -> None:
    # §2.3.3: not-acceptable when "the length of the 'name' attribute is greater than a server-configured
    # limit" or "the XML character data of the <group/> element is larger than a server-configured limit".
    (user,) = await fresh_users(server, 1)
    async with connect(server, user, roster=True) as c:
        reply = await c.iq(roster_set(f"long@{server.domain}", attrs=f"name='{'n' * 5000}'"))
        assert_stanza_error(reply, "modify", "not-acceptable")
        reply = await c.iq(roster_set(f"long@{server.domain}", children=f"<group>{'g' * 5000}</group>"))
        assert_stanza_error(reply, "modify", "not-acceptable")
        assert await roster_item(c, f"long@{server.domain}") is None


@xfail_on("prosody", reason="RFC 6121 §2.3.3 forbidden for a roster set by another entity: Prosody "
                            "answers service-unavailable")
async def test_roster_set_on_another_users_roster_is_forbidden(server: ServerInfo) -> None:
    # §2.3.3: "The server MUST return a <forbidden/> stanza error to the client if the sender of the roster
    # set is not authorized to update the roster (where typically only an authenticated resource of the
    # account itself is authorized)."
    user, other = await fresh_users(server, 2)
    async with connect(server, user, roster=True) as c:
        reply = await c.iq(
            f"<iq type='set' to='{server.jid(other)}'><query xmlns='{ROSTER}'>"
            f"<item jid='intruder@{server.domain}'/></query></iq>"
        )
        assert_stanza_error(reply, "auth", "forbidden")
    async with connect(server, other) as o:
        assert await roster_item(o, f"intruder@{server.domain}") is None


async def test_roster_set_ignores_subscription_values_other_than_remove(server: ServerInfo) -> None:
    # §2.1.2.5: "in a roster set the server MUST ignore all values of the 'subscription' attribute other
    # than 'remove'." A client cannot grant itself a subscription.
    user, contact = await fresh_users(server, 2)
    async with connect(server, user, roster=True) as c:
        reply = await c.iq(roster_set(server.jid(contact), attrs="subscription='both' name='Bob'"))
        assert reply.get("type") == "result"
        push = await expect_push(c, server.jid(contact))
        assert push.find(f"{q('roster:query')}/{q('roster:item')}").get("subscription") in (None, "none")
        item = await roster_item(c, server.jid(contact))
        assert item is not None and item.get("subscription") in (None, "none") and item.get("name") == "Bob"


async def test_roster_add_update_remove_pushes_to_every_interested_resource(server: ServerInfo) -> None:
    # §2.3.2 / §2.4.2 / §2.5.2: the server MUST send a roster push "to all of the user's interested
    # resources, including the resource that generated the roster set".
    (user,) = await fresh_users(server, 1)
    contact = f"romeo@{server.domain}"
    async with connect(server, user, roster=True) as one, connect(server, user, roster=True) as two:
        reply = await one.iq(roster_set(contact, attrs="name='Romeo'", children="<group>Friends</group>"))
        assert reply.get("type") == "result"
        for c in (one, two):
            push = await expect_push(c, contact, name="Romeo")
            assert [g.text for g in push.iter(q("roster:group"))] == ["Friends"]
        # An update replaces the item exactly as given (§2.4.1): the group is gone, the name changed.
        await one.iq(roster_set(contact, attrs="name='R.'"))
        for c in (one, two):
            push = await expect_push(c, contact, name="R.")
            assert list(push.iter(q("roster:group"))) == []
        await one.iq(roster_set(contact, attrs="subscription='remove'"))
        for c in (one, two):
            await expect_push(c, contact, subscription="remove")
        assert await roster_item(two, contact) is None


@xfail_on("ejabberd", reason="RFC 6121 §2.5.3 item-not-found when removing an unknown item: ejabberd "
                             "answers result and pushes a removal")
async def test_removing_an_unknown_item_is_item_not_found(server: ServerInfo) -> None:
    # §2.5.3: "If the value of the 'jid' attribute specifies an item that is not in the roster, then the
    # server MUST return an <item-not-found/> stanza error to the client."
    (user,) = await fresh_users(server, 1)
    async with connect(server, user, roster=True) as c:
        reply = await c.iq(roster_set(f"nobody@{server.domain}", attrs="subscription='remove'"))
        assert_stanza_error(reply, None, "item-not-found")


@xfail_on("prosody", reason="RFC 6121 §2.6.1 a new version ID for every roster change: Prosody reports "
                            "ver '1' for a new account's empty roster and again '1' after the first change")
async def test_roster_versioning(server: ServerInfo) -> None:
    # §2.6: a server that advertises <ver xmlns='urn:xmpp:features:rosterver'/> includes 'ver' in roster
    # results; for a known version it "MUST either return the complete roster ... (including a 'ver'
    # attribute that signals the latest version) or return an empty IQ-result (thus indicating that any
    # roster modifications will be sent via roster pushes)"; pushes carry the new 'ver' (§2.6.3).
    (user,) = await fresh_users(server, 1)
    async with connect(server, user) as c:
        assert c.features is not None and c.features.find("{urn:xmpp:features:rosterver}ver") is not None
        first = await roster_get(c, ver="")
        ver0 = first.find(q("roster:query")).get("ver")
        assert ver0 is not None
        # Unchanged: empty result, or the full (empty) roster with the same version.
        same = await roster_get(c, ver=ver0)
        query = same.find(q("roster:query"))
        assert query is None or (query.get("ver") == ver0 and len(query) == 0)
        await c.iq(roster_set(f"juliet@{server.domain}"))
        push = await expect_push(c, f"juliet@{server.domain}")
        ver1 = push.find(q("roster:query")).get("ver")
        assert ver1 and ver1 != ver0
    # A new session with the old version learns the change by a full roster or by pushes.
    async with connect(server, user) as c:
        reply = await roster_get(c, ver=ver0)
        query = reply.find(q("roster:query"))
        if query is None:
            push = await expect_push(c, f"juliet@{server.domain}")
            assert push.find(q("roster:query")).get("ver") == ver1
        else:
            assert query.get("ver") == ver1
            assert [i.get("jid") for i in query] == [f"juliet@{server.domain}"]
        # With the current version: nothing new.
        reply = await roster_get(c, ver=ver1)
        query = reply.find(q("roster:query"))
        assert query is None or query.get("ver") == ver1
