"""RFC 6121 §3 and Appendix A: presence subscriptions — request, approval, pre-approval, denial,
cancellation, unsubscription, duplicates and requests waiting for an offline contact."""

from __future__ import annotations

from tests.conformance.client import connect, q
from tests.conformance.conftest import ServerInfo, xfail_on
from tests.conformance.im import (
    bare,
    expect_push,
    fresh_users,
    is_presence,
    is_push,
    item_state,
    localpart,
    online_pair,
    roster_item,
    subscribe,
    subscribed_pair,
)


async def test_subscription_request_and_approval(server: ServerInfo) -> None:
    async with online_pair(server) as (u, c):
        u_jid, c_jid = bare(u), bare(c)
        await u.send(f"<presence to='{c_jid}' type='subscribe'/>")
        # §3.1.2: the user's server pushes the item with subscription 'none' and ask 'subscribe'.
        await expect_push(u, c_jid, subscription="none", ask="subscribe")
        # §3.1.3: the contact receives the request 'from' the user's bare JID.
        await c.expect(is_presence(u_jid, "subscribe"))
        await c.send(f"<presence to='{u_jid}' type='subscribed'/>")
        # §3.1.5: the contact's server pushes 'from' to the contact ...
        await expect_push(c, u_jid, subscription="from")
        # ... and sends the user the contact's presence from each available resource (full JID).
        await u.expect(is_presence(c.jid, None))
        # §3.1.6: the user's server pushes 'to' (no more 'ask') and delivers the 'subscribed'.
        await expect_push(u, c_jid, subscription="to", ask=None)
        await u.expect(is_presence(c_jid, "subscribed", bare_from=True))


async def test_subscription_request_waits_for_the_contact_to_come_online(server: ServerInfo) -> None:
    # §3.1.3: "if the contact has no available resources, the contact's server MUST ... store the request
    # and deliver it when the contact next has an available resource".
    user, contact = await fresh_users(server, 2)
    u_jid, c_jid = server.jid(user), server.jid(contact)
    async with connect(server, user, roster=True, presence=True) as u:
        await u.send(f"<presence to='{c_jid}' type='subscribe' id='waiting'/>")
        await expect_push(u, c_jid, ask="subscribe")
        await u.sync()
    async with connect(server, contact, roster=True, presence=True) as c:
        request = await c.expect(is_presence(u_jid, "subscribe"))
        assert request.get("from") == u_jid  # the bare JID, never a full one
        await c.send(f"<presence to='{u_jid}' type='subscribed'/>")
        await expect_push(c, u_jid, subscription="from")
    assert await item_state(server, user, c_jid) == ("to", None)


async def test_duplicate_subscription_requests_are_not_delivered_again(server: ServerInfo) -> None:
    # Appendix A.3.1: an inbound "subscribe" in state "None + Pending In" is not delivered (no state
    # change); in state "From" it is not delivered either (the contact's server SHOULD auto-reply with
    # "subscribed", which the user's server in turn does not deliver: A.2.2, "To", no state change).
    async with online_pair(server) as (u, c):
        u_jid, c_jid = bare(u), bare(c)
        await u.send(f"<presence to='{c_jid}' type='subscribe' id='first'/>")
        await c.expect(is_presence(u_jid, "subscribe"))
        await u.send(f"<presence to='{c_jid}' type='subscribe' id='second'/>")
        await u.sync()
        await c.assert_nothing(is_presence(u_jid, "subscribe"))
        await c.send(f"<presence to='{u_jid}' type='subscribed'/>")
        await expect_push(u, c_jid, subscription="to")
        await u.expect(is_presence(c_jid, "subscribed", bare_from=True))
        await u.send(f"<presence to='{c_jid}' type='subscribe' id='third'/>")
        await u.sync()
        await c.assert_nothing(is_presence(u_jid, "subscribe"))
        assert (await roster_item(u, c_jid)).get("subscription") == "to"
        assert (await roster_item(c, u_jid)).get("subscription") == "from"


@xfail_on("ejabberd", reason="RFC 6121 §3.4 pre-approval is optional: ejabberd 23.01 does not offer it "
                             "(no urn:xmpp:features:pre-approval stream feature)")
@xfail_on("prosody", reason="RFC 6121 §3.4.2 the pre-approved item is pushed with approved='true': Prosody "
                            "0.12 offers the feature but pushes nothing")
async def test_pre_approval(server: ServerInfo) -> None:
    # §3.4: a server offering <sub xmlns='urn:xmpp:features:pre-approval'/> lets the contact approve in
    # advance; the later request is then approved without asking the contact.
    user, contact = await fresh_users(server, 2)
    u_jid, c_jid = server.jid(user), server.jid(contact)
    async with connect(server, contact, roster=True, presence=True) as c:
        assert c.features is not None and c.features.find("{urn:xmpp:features:pre-approval}sub") is not None
        await c.send(f"<presence to='{u_jid}' type='subscribed'/>")
        # §3.4.2: the item is created (or updated) with approved='true' and pushed.
        await expect_push(c, u_jid, subscription="none", approved="true")
        async with connect(server, user, roster=True, presence=True) as u:
            await u.send(f"<presence to='{c_jid}' type='subscribe'/>")
            await u.expect(is_presence(c_jid, "subscribed", bare_from=True))
            await expect_push(u, c_jid, subscription="to")
            await expect_push(c, u_jid, subscription="from")
            await c.assert_nothing(is_presence(u_jid, "subscribe"))


async def test_denying_a_subscription_request(server: ServerInfo) -> None:
    # §3.1.4 / Appendix A: "unsubscribed" in answer to a pending request (declining it): the user's item
    # goes back to 'none' without 'ask' and the user receives the "unsubscribed".
    async with online_pair(server) as (u, c):
        u_jid, c_jid = bare(u), bare(c)
        await u.send(f"<presence to='{c_jid}' type='subscribe'/>")
        await expect_push(u, c_jid, ask="subscribe")
        await c.expect(is_presence(u_jid, "subscribe"))
        await c.send(f"<presence to='{u_jid}' type='unsubscribed'/>")
        await u.expect(is_presence(c_jid, "unsubscribed", bare_from=True))
        await expect_push(u, c_jid, subscription="none", ask=None)
        contact = localpart(c)
    # The denied request is not delivered again at the contact's next login.
    async with connect(server, contact, roster=True, presence=True) as c:
        await c.assert_nothing(is_presence(u_jid, "subscribe"))


async def test_contact_cancels_the_users_subscription(server: ServerInfo) -> None:
    # §3.2: the contact sends "unsubscribed"; both items go to 'none' (§3.2.2, §3.2.3) and the user
    # receives the "unsubscribed" and unavailable presence from the contact's available resources.
    async with subscribed_pair(server) as (u, c):  # user 'to' contact, contact 'from' user
        u_jid, c_jid = bare(u), bare(c)
        await c.send(f"<presence to='{u_jid}' type='unsubscribed'/>")
        await expect_push(c, u_jid, subscription="none")
        await u.expect(is_presence(c.jid, "unavailable"))
        await u.expect(is_presence(c_jid, "unsubscribed", bare_from=True))
        await expect_push(u, c_jid, subscription="none")


@xfail_on("prosody", reason="RFC 6121 §3.3.3 the contact's server sends unavailable presence from the "
                            "contact's available resources to the user: Prosody 0.12 does not")
async def test_user_unsubscribes_from_the_contact(server: ServerInfo) -> None:
    # §3.3: the user sends "unsubscribe"; the user's item goes to 'none' (§3.3.2), the contact receives
    # the "unsubscribe" from the user's bare JID, its item goes to 'none' and the user receives
    # unavailable presence from the contact's available resources (§3.3.3).
    async with subscribed_pair(server) as (u, c):  # user 'to' contact, contact 'from' user
        u_jid, c_jid = bare(u), bare(c)
        await u.send(f"<presence to='{c_jid}' type='unsubscribe'/>")
        await expect_push(u, c_jid, subscription="none")
        await c.expect(is_presence(u_jid, "unsubscribe"))
        await expect_push(c, u_jid, subscription="none")
        await u.expect(is_presence(c.jid, "unavailable"))


async def test_mutual_subscription_and_removal_cancels_both_ways(server: ServerInfo) -> None:
    # §2.5.2: removing an item with a 'both' subscription sends "unsubscribe" and "unsubscribed" to the
    # contact; the contact's item goes to 'none' and the user's item is gone.
    async with subscribed_pair(server) as (u, c):  # user 'to' contact, contact 'from' user
        u_jid, c_jid = bare(u), bare(c)
        await subscribe(c, u, c_jid, u_jid)
        assert (await roster_item(u, c_jid)).get("subscription") == "both"
        assert (await roster_item(c, u_jid)).get("subscription") == "both"
        u.drain()
        c.drain()
        await u.iq(f"<iq type='set'><query xmlns='jabber:iq:roster'><item jid='{c_jid}' "
                   f"subscription='remove'/></query></iq>")
        await expect_push(u, c_jid, subscription="remove")
        await c.expect(is_presence(u_jid, "unsubscribe"))
        await c.expect(is_presence(u_jid, "unsubscribed"))
        await c.expect(is_presence(u.jid, "unavailable"))
        await expect_push(c, u_jid, subscription="none")
        assert await roster_item(u, c_jid) is None


async def test_subscription_request_to_a_missing_account_is_silently_ignored(server: ServerInfo) -> None:
    # §8.5.1 (no such user): "For a presence stanza of type "subscribe", "subscribed", "unsubscribe", or
    # "unsubscribed", the server MUST silently ignore the stanza."
    (user,) = await fresh_users(server, 1)
    ghost = f"ghost-{user}@{server.domain}"
    async with connect(server, user, roster=True, presence=True) as u:
        await u.send(f"<presence to='{ghost}' type='subscribe'/>")
        await expect_push(u, ghost, ask="subscribe")
        await u.assert_nothing(
            lambda e: e.tag == q("c:presence") and e.get("from", "").startswith(ghost)
            and e.get("type") in ("subscribed", "unsubscribed", "error")
        )
        await u.assert_nothing(is_push(ghost, subscription="to"))


async def test_unsolicited_subscribed_creates_no_subscription(server: ServerInfo) -> None:
    # Appendix A.3.2: an inbound "subscribed" in state "None" (no request pending) is not delivered and
    # changes nothing: nobody can push a subscription on a user.
    async with online_pair(server) as (u, s):
        u_jid, s_jid = bare(u), bare(s)
        await s.send(f"<presence to='{u_jid}' type='subscribed'/>")
        await s.sync()
        await u.assert_nothing(lambda e: e.tag == q("c:presence") and e.get("from", "").startswith(s_jid))
        await u.assert_nothing(is_push(s_jid))
        item = await roster_item(u, s_jid)
        assert item is None or item.get("subscription") in (None, "none")


async def test_withdrawn_request_is_not_delivered_at_login(server: ServerInfo) -> None:
    # Appendix A.2.3 / A.3.3: "unsubscribe" while the request is pending cancels it ("None + Pending Out"
    # -> "None" for the user, "None + Pending In" -> "None" for the contact): the offline contact never
    # sees the request.
    user, contact = await fresh_users(server, 2)
    u_jid, c_jid = server.jid(user), server.jid(contact)
    async with connect(server, user, roster=True, presence=True) as u:
        await u.send(f"<presence to='{c_jid}' type='subscribe'/>")
        await expect_push(u, c_jid, ask="subscribe")
        await u.send(f"<presence to='{c_jid}' type='unsubscribe'/>")
        await expect_push(u, c_jid, subscription="none", ask=None)
    async with connect(server, contact, roster=True, presence=True) as c:
        await c.assert_nothing(is_presence(u_jid, "subscribe"))


async def test_subscription_request_to_a_full_jid_is_about_the_bare_jid(server: ServerInfo) -> None:
    # §3.1.1 / §3.1.2: subscriptions are between bare JIDs; the user's server stamps the bare JID as
    # 'from', and the roster item is for the contact's bare JID.
    async with online_pair(server) as (u, c):
        u_jid, c_jid = bare(u), bare(c)
        await u.send(f"<presence to='{c.jid}' type='subscribe'/>")
        request = await c.expect(is_presence(u_jid, "subscribe"))
        assert request.get("from") == u_jid
        await expect_push(u, c_jid, ask="subscribe")


@xfail_on("ejabberd", reason="RFC 6121 §3.4 pre-approval is optional: ejabberd 23.01 does not offer it")
@xfail_on("prosody", reason="RFC 6121 §3.4.2 the pre-approved item is pushed with approved='true': Prosody "
                            "0.12 offers the feature but pushes nothing")
async def test_cancelling_a_pre_approval(server: ServerInfo) -> None:
    # §3.4 / Appendix A.2.4: "unsubscribed" after a pre-approval cancels it; a later request is then
    # delivered to the contact for a decision.
    user, contact = await fresh_users(server, 2)
    u_jid, c_jid = server.jid(user), server.jid(contact)
    async with connect(server, contact, roster=True, presence=True) as c:
        await c.send(f"<presence to='{u_jid}' type='subscribed'/>")
        await expect_push(c, u_jid, approved="true")
        await c.send(f"<presence to='{u_jid}' type='unsubscribed'/>")
        await expect_push(c, u_jid, approved=None)
        async with connect(server, user, roster=True, presence=True) as u:
            await u.send(f"<presence to='{c_jid}' type='subscribe'/>")
            await c.expect(is_presence(u_jid, "subscribe"))
            await u.assert_nothing(is_presence(c_jid, "subscribed", bare_from=True))


async def test_approval_while_the_user_is_offline_is_kept(server: ServerInfo) -> None:
    # §3.1.5 / §3.1.6: the contact's approval updates the user's roster ("None + Pending Out" -> "To")
    # even when the user has no session at the time.
    user, contact = await fresh_users(server, 2)
    u_jid, c_jid = server.jid(user), server.jid(contact)
    async with connect(server, contact, roster=True, presence=True) as c:
        async with connect(server, user, roster=True, presence=True) as u:
            await u.send(f"<presence to='{c_jid}' type='subscribe'/>")
            await c.expect(is_presence(u_jid, "subscribe"))
        await c.send(f"<presence to='{u_jid}' type='subscribed'/>")
        await expect_push(c, u_jid, subscription="from")
    assert await item_state(server, user, c_jid) == ("to", None)


async def test_subscriber_sees_unavailable_when_the_contact_disconnects(server: ServerInfo) -> None:
    # §4.5.2 / §4.6.3: when a session ends without unavailable presence, the server broadcasts it on the
    # session's behalf to the contacts subscribed to the user ('from' / 'both').
    user, contact = await fresh_users(server, 2)
    u_jid, c_jid = server.jid(user), server.jid(contact)
    async with connect(server, user, roster=True, presence=True) as u:
        async with connect(server, contact, roster=True, presence=True) as c:
            await subscribe(u, c, u_jid, c_jid)
            contact_full = c.jid
        await u.expect(is_presence(contact_full, "unavailable"))


async def test_subscription_request_reaches_every_available_resource(server: ServerInfo) -> None:
    # §3.1.3: "if there is at least one available resource associated with the contact ... the contact's
    # server MUST send that subscription request to all available resources", also to one that has not
    # requested the roster.
    user, contact = await fresh_users(server, 2)
    u_jid, c_jid = server.jid(user), server.jid(contact)
    async with connect(server, contact, roster=True, presence=True) as c1, connect(server, contact) as c2, \
            connect(server, user, roster=True, presence=True) as u:
        await c2.send("<presence/>")
        await c2.sync()
        await u.send(f"<presence to='{c_jid}' type='subscribe'/>")
        for c in (c1, c2):
            await c.expect(is_presence(u_jid, "subscribe"))
