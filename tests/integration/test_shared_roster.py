"""Shared-roster groups seen by real clients: members on each other's rosters with presence, and every change
an administrator makes (member added or removed, group renamed, an account created for "everyone") pushed
to the online clients."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from slixmpp.exceptions import IqError

from tests.integration.harness import PASSWORD, Client, Harness

ADMIN = "admin@localhost"


def groups_desk(harness: Harness) -> Any:
    assert harness.server.services is not None
    return harness.server.services.groups


async def pushing_client(harness: Harness, jid: str, password: str = PASSWORD) -> Client:
    """A logged-in client whose roster pushes land in `client.pushes` as (jid, subscription, groups)."""
    client = await harness.client(jid, password)
    pushes: asyncio.Queue[tuple[str, str, list[str]]] = asyncio.Queue()

    def on_push(iq: Any) -> None:
        for item_jid, item in iq["roster"]["items"].items():
            pushes.put_nowait((str(item_jid), item["subscription"], sorted(item["groups"])))

    client.add_event_handler("roster_update", on_push)
    client.pushes = pushes  # type: ignore[attr-defined]
    return client


async def next_push(client: Client) -> tuple[str, str, list[str]]:
    return await asyncio.wait_for(client.pushes.get(), 5)  # type: ignore[attr-defined]


async def roster_items(client: Client) -> dict[str, Any]:
    """A fresh roster get, answered in full (no version sent)."""
    return dict((await fetch_roster(client))["roster"]["items"])


async def fetch_roster(client: Client) -> Any:
    return await client.make_iq_get(queryxmlns="jabber:iq:roster").send()


async def available_from(client: Client, jid: str) -> None:
    while True:
        presence = await client.next_presence()
        if str(presence["from"].bare) == jid and presence["type"] in ("available", ""):
            return


async def unavailable_from(client: Client, jid: str) -> None:
    while True:
        presence = await client.next_presence()
        if str(presence["from"].bare) == jid and presence["type"] == "unavailable":
            return


async def test_members_see_each_other_and_each_others_presence(harness: Harness) -> None:
    alice, bob = await harness.user("alice"), await harness.user("bob")
    await harness.user("carol")  # not a member: on nobody's roster
    await groups_desk(harness).create(ADMIN, "localhost", "Staff", members=["alice", "bob"])

    a = await harness.client(alice)
    assert set(a.client_roster) == {bob}
    assert a.client_roster[bob]["subscription"] == "both"
    assert a.client_roster[bob]["groups"] == ["Staff"]

    b = await harness.client(bob)
    assert b.client_roster[alice]["subscription"] == "both"
    await available_from(a, bob)  # bob's initial presence reached alice
    await available_from(b, alice)  # bob's probe was answered with alice's presence

    b.disconnect()
    await unavailable_from(a, bob)


async def test_adding_a_member_pushes_to_online_clients_and_presence_flows(harness: Harness) -> None:
    alice, bob, carol = [await harness.user(n) for n in ("alice", "bob", "carol")]
    desk = groups_desk(harness)
    await desk.create(ADMIN, "localhost", "Staff", members=["alice", "bob"])
    a = await pushing_client(harness, alice)
    c = await pushing_client(harness, carol)
    assert carol not in a.client_roster

    await desk.add_member(ADMIN, "localhost", "Staff", carol)
    assert await next_push(a) == (carol, "both", ["Staff"])
    # carol gets both colleagues (bob is offline, still on the roster)
    assert sorted([await next_push(c), await next_push(c)]) == [(alice, "both", ["Staff"]), (bob, "both", ["Staff"])]
    await available_from(a, carol)
    await available_from(c, alice)


async def test_removing_a_member_pushes_remove_and_unavailable(harness: Harness) -> None:
    alice, bob = await harness.user("alice"), await harness.user("bob")
    desk = groups_desk(harness)
    await desk.create(ADMIN, "localhost", "Staff", members=["alice", "bob"])
    a = await pushing_client(harness, alice)
    b = await pushing_client(harness, bob)
    await available_from(a, bob)

    await desk.remove_member(ADMIN, "localhost", "Staff", bob)
    assert await next_push(a) == (bob, "remove", [])
    assert await next_push(b) == (alice, "remove", [])
    await unavailable_from(a, bob)
    assert bob not in await roster_items(a)


async def test_rename_and_everyone_group(harness: Harness) -> None:
    alice, bob = await harness.user("alice"), await harness.user("bob")
    desk = groups_desk(harness)
    await desk.create(ADMIN, "localhost", "All of us", everyone=True)
    a = await pushing_client(harness, alice)
    assert a.client_roster[bob]["groups"] == ["All of us"]

    await desk.rename(ADMIN, "localhost", "All of us", "Company")
    assert await next_push(a) == (bob, "both", ["Company"])

    dave = await harness.user("dave")  # a new account joins "everyone" at once
    assert await next_push(a) == (dave, "both", ["Company"])
    assert harness.server.accounts is not None
    from appliance.xmpp.jid import JID

    await harness.server.accounts.delete(JID.parse(dave))
    assert await next_push(a) == (dave, "remove", [])


async def test_own_roster_beside_shared_and_version_changes(harness: Harness) -> None:
    alice, bob = await harness.user("alice"), await harness.user("bob")
    a = await harness.client(alice)
    await a.update_roster("friend@example.net", name="Friend", groups=["Outside"])
    plain = await fetch_roster(a)
    old_version = plain["roster"]["ver"]

    await groups_desk(harness).create(ADMIN, "localhost", "Staff", members=["alice", "bob"])
    fresh = await fetch_roster(a)
    assert old_version and fresh["roster"]["ver"] != old_version  # a client's cached roster is not taken as current
    items = fresh["roster"]["items"]
    assert items["friend@example.net"]["groups"] == ["Outside"]
    assert items[bob]["subscription"] == "both" and items[bob]["groups"] == ["Staff"]

    # The user renames the shared contact into a group of their own: both groups show, still "both".
    await a.update_roster(bob, name="Bobby", groups=["Mine"])
    items = await roster_items(a)
    assert items[bob]["name"] == "Bobby"
    assert sorted(items[bob]["groups"]) == ["Mine", "Staff"] and items[bob]["subscription"] == "both"

    # Only the administrator takes a shared contact away.
    with pytest.raises(IqError) as caught:
        await a.del_roster_item(bob)
    assert caught.value.iq["error"]["condition"] == "not-allowed"

    # Out of the group, bob stays where alice put him, without the subscription only the group gave.
    await groups_desk(harness).remove_member(ADMIN, "localhost", "Staff", bob)
    items = await roster_items(a)
    assert (items[bob]["groups"], items[bob]["subscription"]) == (["Mine"], "none"), dict(items[bob])


async def test_desk_refusals(harness: Harness) -> None:
    from appliance.services.errors import Conflict, NotFound, ServiceError

    await harness.user("alice")
    desk = groups_desk(harness)
    await desk.create(ADMIN, "localhost", "Staff", members=["alice"])
    with pytest.raises(Conflict):
        await desk.create(ADMIN, "localhost", " Staff ")
    with pytest.raises(ServiceError, match="not an account"):
        await desk.add_member(ADMIN, "localhost", "Staff", "zed@elsewhere.example")
    with pytest.raises(ServiceError, match="nobody"):
        await desk.add_member(ADMIN, "localhost", "Staff", "nobody")
    with pytest.raises(NotFound):
        await desk.delete(ADMIN, "localhost", "Nope")
    with pytest.raises(ServiceError):
        await desk.create(ADMIN, "localhost", "   ")
    await desk.delete(ADMIN, "localhost", "Staff")
    assert await desk.groups("localhost") == []
