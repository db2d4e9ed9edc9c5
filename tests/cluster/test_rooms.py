"""Room leases on a real Redis: one living node holds a room, fencing tokens only grow, a dead holder's
lease goes at once, a lease not renewed in time stops the node acting, and the index of rooms in use;
what a node remembers of rooms run by others, and when it forgets it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from lxml import etree
from redis.asyncio import Redis

from appliance.cluster import keys
from appliance.cluster.changes import ChangeBus
from appliance.cluster.node import connect
from appliance.cluster.rooms import ClusterRooms, Occupancy, RoomInUse, RoomLeases, rooms_in_use
from appliance.core.changes import SharedChanges
from appliance.core.events import StanzaEvent
from appliance.util.tasks import TaskSupervisor
from appliance.xmpp.jid import JID
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


class Rooms:
    """One node's chat service, as the cluster sees it (cluster.rooms.RoomHost), kept in memory."""

    domain = "conference.example.org"

    def __init__(self) -> None:
        self.rooms: dict[str, Occupancy] = {}

    def loaded(self, name: str) -> bool:
        return name in self.rooms

    async def load(self, name: str) -> None:
        self.rooms[name] = {}

    def drop(self, name: str) -> object | None:
        return self.rooms.pop(name, None)

    def resume(self, room: object) -> None:
        raise AssertionError("not in these tests")

    def occupants(self, name: str) -> Occupancy:
        return self.rooms[name]

    async def restore(self, name: str, occupants: list[tuple[JID, str, etree._Element | None]]) -> None:
        return None

    async def remove_gone(self, name: str, present: Callable[[JID], bool]) -> None:
        return None

    def idle(self, name: str) -> bool:
        return False  # somebody is in every room: nobody lets a lease go by itself


class Node:
    """A node's room side: its leases on the real Redis, its shared changes on the real Redis stream, what
    it ran and what it sent to other nodes' inboxes."""

    def __init__(self, redis: Redis, name: str) -> None:
        self.changes = SharedChanges()
        self.bus = ChangeBus(redis, name, self.changes)
        self.changes.link = self.bus
        self.ran: list[str] = []
        self.sent: list[tuple[str, str]] = []  # (node, room JID)
        self.rooms = ClusterRooms(RoomLeases(redis, name, ttl=30), self, Rooms(), handler=self.run,  # type: ignore[arg-type]
                                  present=lambda _jid: True, changes=self.changes)
        self.tasks = TaskSupervisor()

    async def start(self) -> None:
        await self.bus.start()
        self.tasks.spawn(self.bus.write_forever(), "changes-write")
        self.tasks.spawn(self.bus.follow_forever(), "changes-follow")
        self.rooms.start(self.tasks, 60)

    async def run(self, event: StanzaEvent) -> None:
        self.ran.append(str(event.to_jid))

    def post(self, node: str, jid: JID, _kind: bytes, _data: bytes) -> None:  # the Outbox's part used here
        self.sent.append((node, str(jid.bare())))

    async def message(self, room: str = ROOM) -> None:
        stanza = etree.fromstring(f"<message xmlns='jabber:client' to='{room}' type='groupchat'/>")
        await self.rooms.handle(StanzaEvent(stanza, JID.parse("juliet@example.org/balcony"), JID.parse(room)))

    async def close(self) -> None:
        self.bus.running = False
        await self.rooms.stop()
        await self.tasks.close()


async def lease_lookups(redis: Redis) -> int:
    """How many scripts Redis ran so far (the lease claim is one; nothing else here runs one per stanza)."""
    stats = await redis.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))


@pytest.fixture
async def nodes(redis: Redis) -> AsyncIterator[dict[str, Node]]:
    await redis.set(keys.alive("n3"), "1")
    started = {name: Node(redis, name) for name in ("n1", "n2", "n3")}
    for node in started.values():
        await node.start()
    yield started
    for node in started.values():
        await node.close()


async def test_stanzas_for_a_room_run_elsewhere_cost_one_lease_lookup(redis: Redis, nodes: dict[str, Node]) -> None:
    n1, n2 = nodes["n1"], nodes["n2"]
    await n1.message()
    assert n1.ran == [ROOM]
    await redis.config_resetstat()
    for _ in range(20):
        await n2.message()
    assert n2.sent == [("n1", ROOM)] * 20 and n2.ran == []
    assert await lease_lookups(redis) == 1  # the first stanza's; the other 19 knew where the room is


async def test_a_moved_room_is_still_reached(redis: Redis, nodes: dict[str, Node]) -> None:
    n1, n2, n3 = nodes["n1"], nodes["n2"], nodes["n3"]
    await n1.message()
    await n2.message()
    assert n2.rooms.owners[ROOM] == "n1"
    # n1 stops: the room is handed on (its lease goes) and its inbox closes; n3 takes the room.
    await n1.rooms.stop()
    await n3.message()
    assert n3.ran == [ROOM]
    async with asyncio.timeout(5):  # n3's announcement of the new lease reaches n2
        while ROOM in n2.rooms.owners:
            await asyncio.sleep(0.02)
    await n2.message()
    assert n2.sent[-1] == ("n3", ROOM)
    # The same when all n2 learns is that n1's inbox closed (the registry forgets a stopped or dead node).
    n2.rooms.owners[ROOM] = "n1"
    n2.rooms.node_gone("n1")
    await n2.message()
    assert n2.sent[-1] == ("n3", ROOM) and n2.rooms.owners[ROOM] == "n3"
