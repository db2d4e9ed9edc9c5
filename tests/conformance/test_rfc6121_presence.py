"""RFC 6121 §4 and §8.5 (presence): initial presence and probes, broadcast to available resources only,
directed presence and its end, presence to full JIDs."""

from __future__ import annotations

import pytest

from tests.conformance.client import connect, q
from tests.conformance.conftest import ServerInfo, xfail_on
from tests.conformance.im import (
    bare,
    fresh_users,
    is_presence,
    localpart,
    online_pair,
    roster_item,
    settle,
    subscribe,
    subscribed_pair,
)


async def test_initial_presence_probes_contacts_and_reaches_subscribers_only(server: ServerInfo) -> None:
    # §4.2.2: the user's server sends the initial presence to contacts with a 'from' or 'both' subscription
    # (not to a contact the user is only subscribed to) and probes those with 'to' or 'both' (§4.3); the
    # contact's server answers the probe with the presence of each available resource (§4.3.2).
    async with subscribed_pair(server) as (u, c):  # user 'to' contact, contact 'from' user
        await c.send("<presence><show>away</show><status>lunch</status></presence>")
        await u.expect(lambda e: is_presence(c.jid, None)(e) and e.findtext(q("c:status")) == "lunch")
        async with connect(server, localpart(u), roster=True) as u2:
            await u2.send("<presence><status>second</status></presence>")
            answer = await u2.expect(is_presence(c.jid, None))
            assert answer.findtext(q("c:status")) == "lunch"
            await u2.sync()
            # The contact has no subscription to the user: the new resource's presence never reaches it.
            await c.assert_nothing(is_presence(u2.jid))
            # The user's other available resource learns of it (§4.2.2).
            await u.expect(is_presence(u2.jid, None))


async def test_presence_broadcast_reaches_available_resources_only(server: ServerInfo) -> None:
    # §4.4.2 / §8.5.2.1.2: presence broadcast goes to the contact's *available* resources; a connected
    # resource that has not sent initial presence gets none (RFC 6120 §10.5, RFC 6121 §4.2.2).
    async with online_pair(server) as (u, c):
        u_jid, c_jid = bare(u), bare(c)
        await subscribe(c, u, c_jid, u_jid)  # contact -> user: the contact receives the user's presence
        async with connect(server, localpart(c), roster=True) as quiet:
            await u.send("<presence><status>broadcast</status></presence>")
            await c.expect(lambda e: is_presence(u.jid, None)(e) and e.findtext(q("c:status")) == "broadcast")
            await u.sync()
            await quiet.assert_nothing(lambda e: e.tag == q("c:presence") and e.get("from", "").startswith(u_jid))


async def test_directed_presence_and_its_unavailable_at_logout(server: ServerInfo) -> None:
    # §4.6: directed presence reaches an entity without a subscription; when the user goes offline the
    # server MUST send unavailable presence to it (§4.6.3), from the same full JID.
    user, other = await fresh_users(server, 2)
    async with connect(server, other, roster=True, presence=True) as o:
        async with connect(server, user, roster=True, presence=True) as u:
            user_full = u.jid
            await u.send(f"<presence to='{o.jid}'><status>just for you</status></presence>")
            got = await o.expect(is_presence(user_full, None))
            assert got.findtext(q("c:status")) == "just for you"
        # The stream closed without an explicit unavailable presence.
        await o.expect(is_presence(user_full, "unavailable"))


async def test_directed_presence_ends_with_unavailable_broadcast(server: ServerInfo) -> None:
    # §4.6.3: "the user's server MUST send that unavailable presence [broadcast] to all entities to which
    # the user sent directed presence" (and §4.5.2 for the broadcast itself).
    async with online_pair(server) as (u, o):
        await u.send(f"<presence to='{o.jid}'/>")
        await o.expect(is_presence(u.jid, None))
        await u.send("<presence type='unavailable'><status>bye</status></presence>")
        gone = await o.expect(is_presence(u.jid, "unavailable"))
        assert gone.findtext(q("c:status")) == "bye"


async def test_presence_to_a_full_jid(server: ServerInfo) -> None:
    # §8.5.3.1: presence without type to an existing full JID is delivered to that resource only;
    # §8.5.3.2.2: to a full JID with no matching resource it is silently ignored (not given to others).
    user, other = await fresh_users(server, 2)
    async with connect(server, other, roster=True, presence=True) as o1, \
            connect(server, other, roster=True, presence=True) as o2, \
            connect(server, user, roster=True, presence=True) as u:
        await u.send(f"<presence to='{o1.jid}'><status>one</status></presence>")
        await o1.expect(is_presence(u.jid, None))
        await u.send(f"<presence to='{server.jid(other, 'nowhere')}'><status>lost</status></presence>")
        await u.sync()
        for o in (o1, o2):
            await o.assert_nothing(lambda e: e.tag == q("c:presence") and e.get("from") == u.jid
                                   and e.findtext(q("c:status")) == "lost")
        await o2.assert_nothing(is_presence(u.jid, None))
        # No subscription was created by directed presence.
        assert await roster_item(u, server.jid(other)) is None


async def test_presence_to_a_bare_jid_reaches_every_available_resource(server: ServerInfo) -> None:
    # §8.5.2.1.2: presence without type to a bare JID is delivered to all available resources (and not
    # to a connected resource that has not sent initial presence).
    user, other = await fresh_users(server, 2)
    async with connect(server, other, roster=True, presence=True) as o1, \
            connect(server, other, roster=True, presence=True) as o2, \
            connect(server, other, roster=True) as quiet, \
            connect(server, user, roster=True, presence=True) as u:
        await settle(o1, o2, quiet)
        await u.send(f"<presence to='{server.jid(other)}'><status>to bare</status></presence>")
        for o in (o1, o2):
            await o.expect(lambda e: is_presence(u.jid, None)(e) and e.findtext(q("c:status")) == "to bare")
        await u.sync()
        await quiet.assert_nothing(is_presence(u.jid, None))


async def test_new_resource_learns_the_presence_of_the_users_other_resources(server: ServerInfo) -> None:
    # §4.2.2: on initial presence the user's server sends the newly available resource the presence of
    # the user's other available resources (and them its own).
    (user,) = await fresh_users(server, 1)
    async with connect(server, user, roster=True) as first:
        await first.send("<presence><status>first</status></presence>")
        await first.sync()
        async with connect(server, user, roster=True) as second:
            await second.send("<presence><status>second</status></presence>")
            got = await second.expect(is_presence(first.jid, None))
            assert got.findtext(q("c:status")) == "first"
            await first.expect(is_presence(second.jid, None))



async def test_presence_to_the_full_jid_of_a_connected_resource(server: ServerInfo) -> None:
    # §8.5.3.1: "If an available resource or connected resource exactly matches the full JID" the stanza
    # is delivered to it; for presence without type, too.
    user, other = await fresh_users(server, 2)
    async with connect(server, other, roster=True) as quiet, connect(server, user, roster=True, presence=True) as u:
        await u.send(f"<presence to='{quiet.jid}'><status>directed</status></presence>")
        await quiet.expect(lambda e: is_presence(u.jid, None)(e) and e.findtext(q("c:status")) == "directed")


@xfail_on("ejabberd", reason="RFC 6121 §4.3.2 (SHOULD) unavailable presence in answer to a probe of an offline "
                             "contact: ejabberd 23.01 sends nothing")
async def test_probe_of_an_offline_contact_is_answered_unavailable(server: ServerInfo) -> None:
    # §4.3.2: when the contact has no available resources, its server "SHOULD reply to the presence probe
    # by sending to the user ... a presence stanza of type "unavailable"", from the contact's bare JID.
    async with subscribed_pair(server) as (u, c):  # user 'to' contact, contact 'from' user
        c_jid = bare(c)
        user = localpart(u)
    async with connect(server, user, roster=True) as u:
        await u.send("<presence/>")
        await u.expect(is_presence(c_jid, "unavailable", bare_from=True))
        await u.assert_nothing(is_presence(c_jid, None, bare_from=True))


@pytest.mark.parametrize("address", ["full", "bare"])
async def test_presence_error_is_delivered(server: ServerInfo, address: str) -> None:
    # §8.5.3.1: a stanza to an existing full JID is delivered to that resource, presence of type "error"
    # included (the answer a client gives to presence it cannot handle); §8.5.2.1.2: presence to a bare
    # JID reaches its available resources, and an error (for instance the answer to presence the user
    # sent from its bare JID) is not swallowed by the server either.
    async with online_pair(server) as (u, o):
        to = o.jid if address == "full" else bare(o)
        await u.send(f"<presence to='{to}' type='error' id='perr'><error type='cancel'>"
                     "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>")
        await o.expect(lambda e: is_presence(u.jid, "error")(e) and e.get("id") == "perr")
