"""Room leases on a real Redis: one living node holds a room, fencing tokens only grow, a dead holder's
lease goes at once, a lease not renewed in time stops the node acting, and the index of rooms in use."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from appliance.cluster import keys
from appliance.cluster.node import connect
from appliance.cluster.rooms import RoomInUse, RoomLeases, rooms_in_use
from tests.redisserver import RedisServer

ROOM = "lounge@conference.example.org"


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[object]:
    client = connect(redis_server.url)
    await client.flushall()
    for node in ("n1", "n2"):
        await client.set(keys.alive(node), "1")
    yield client
    await client.flushall()
    await client.aclose()


async def test_one_living_node_holds_a_room_and_a_dead_holders_lease_goes_at_once(redis) -> None:  # type: ignore[no-untyped-def]
    n1, n2 = RoomLeases(redis, "n1", ttl=5), RoomLeases(redis, "n2", ttl=5)
    owner, first = await n1.claim(ROOM)
    assert owner == "n1" and n1.valid(ROOM)
    assert await n2.claim(ROOM) == ("n1", first) and not n2.valid(ROOM)
    assert await n1.claim(ROOM) == ("n1", first)  # renewed, same token
    assert await rooms_in_use(redis) == [RoomInUse(ROOM, "n1", 0)]
    await redis.delete(keys.alive("n1"))  # n1 died; its lease has seconds left, but goes now
    assert await n2.orphans() == [ROOM]
    owner, second = await n2.claim(ROOM)
    assert owner == "n2" and second > first
    # n1 was only paused: its renewal finds the lease gone to another node and it stops acting
    assert await n1.renew() == [(ROOM, first)] and not n1.valid(ROOM)
    assert await rooms_in_use(redis) == [RoomInUse(ROOM, "n2", 0)]


async def test_a_lease_not_renewed_in_time_stops_the_node_acting(redis) -> None:  # type: ignore[no-untyped-def]
    n1 = RoomLeases(redis, "n1", ttl=1)
    _owner, token = await n1.claim(ROOM)
    await asyncio.sleep(0.8)  # past three quarters of the TTL without a renewal (Redis away, a pause)
    assert not n1.valid(ROOM)
    assert n1.expired() == [(ROOM, token)] and n1.held == {}
    await asyncio.sleep(0.3)  # Redis let it go too
    assert await RoomLeases(redis, "n2", ttl=1).claim(ROOM) == ("n2", token + 1)


async def test_occupants_are_kept_for_the_next_owner_only_when_handed_on(redis) -> None:  # type: ignore[no-untyped-def]
    n1 = RoomLeases(redis, "n1", ttl=5)
    await n1.claim(ROOM)
    await n1.record(ROOM, {"juliet@example.org/balcony": b'{"n":"Juliet","p":""}'}, [])
    assert await rooms_in_use(redis) == [RoomInUse(ROOM, "n1", 1)]
    await n1.release(ROOM, keep_occupants=True)  # a clean stop: the next owner puts Juliet back
    assert await rooms_in_use(redis) == [] and not await redis.exists(keys.room("lease", ROOM))
    assert list(await n1.recorded(ROOM)) == [b"juliet@example.org/balcony"]
    await n1.claim(ROOM)
    await n1.release(ROOM)  # nobody in it: the record goes with the lease
    assert await n1.recorded(ROOM) == {}
