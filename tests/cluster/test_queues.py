"""The inter-node queues on a real Redis: order, acknowledgement after delivery, redelivery after a crash,
and no write into the inbox of a node whose inbox was closed (emptied by the node that reaped it); the
secret every node shares."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from appliance.cluster import keys
from appliance.cluster.node import connect, shared_secret
from appliance.cluster.queues import Entry, Inbox, Outbox, drain
from appliance.cluster.remote import STANZA
from appliance.xmpp.jid import JID
from tests.redisserver import RedisServer

JULIET = JID.parse("juliet@example.org/balcony")


class NoRouter:
    """The outbox bounces through the router only when Redis is gone past give_up; not in these tests."""

    async def bounce(self, *_args: object) -> None:
        raise AssertionError("nothing should bounce")


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[object]:
    client = connect(redis_server.url)
    await client.flushall()
    yield client
    await client.flushall()
    await client.aclose()


def outbox(redis: object, refused: list[tuple[str, list[Entry]]]) -> Outbox:
    async def record(node: str, batch: list[Entry]) -> None:
        refused.append((node, batch))

    return Outbox(redis, router=NoRouter(), give_up=2, refused=record)  # type: ignore[arg-type]


async def test_stanzas_arrive_in_order_and_are_acknowledged_after_delivery(redis) -> None:  # type: ignore[no-untyped-def]
    out = outbox(redis, [])
    for n in range(300):
        out.post("n2", JULIET, STANZA, f"<message id='{n}'/>".encode())
    waiting = out.settle()
    assert waiting is not None
    await waiting  # written: a client's stanza that caused these may now be acknowledged
    assert await redis.xlen(keys.inbox("n2")) == 300
    got: list[bytes] = []

    async def deliver(fields: dict[bytes, bytes]) -> None:
        got.append(fields[b"d"])

    inbox = Inbox(redis, "n2", deliver)
    task = asyncio.create_task(inbox.run())
    while len(got) < 300:
        await asyncio.sleep(0.05)
    task.cancel()
    assert got == [f"<message id='{n}'/>".encode() for n in range(300)]
    assert await redis.xlen(keys.inbox("n2")) == 0  # acknowledged and deleted
    assert (await redis.xpending(keys.inbox("n2"), keys.GROUP))["pending"] == 0


async def test_what_a_crashed_reader_had_not_acknowledged_comes_again(redis) -> None:  # type: ignore[no-untyped-def]
    out = outbox(redis, [])
    out.post("n2", JULIET, STANZA, b"<message id='lost?'/>")
    await out.settle()  # type: ignore[misc]
    first = Inbox(redis, "n2", lambda _fields: asyncio.sleep(0))
    await first.ensure_group()
    # read but never acknowledged: the node died during the delivery
    await redis.xreadgroup(keys.GROUP, "n2", {keys.inbox("n2"): ">"}, count=10)
    got: list[bytes] = []

    async def deliver(fields: dict[bytes, bytes]) -> None:
        got.append(fields[b"d"])

    task = asyncio.create_task(Inbox(redis, "n2", deliver).run())  # the node's next run
    while not got:
        await asyncio.sleep(0.05)
    task.cancel()
    assert got == [b"<message id='lost?'/>"]


async def test_a_closed_inbox_refuses_writes_and_drain_takes_everything(redis) -> None:  # type: ignore[no-untyped-def]
    refused: list[tuple[str, list[Entry]]] = []
    out = outbox(redis, refused)
    out.post("n3", JULIET, STANZA, b"<message id='before'/>")
    await out.settle()  # type: ignore[misc]
    drained: list[bytes] = []

    async def deliver(fields: dict[bytes, bytes]) -> None:
        drained.append(fields[b"d"])

    await redis.set(keys.closed("n3"), "n1")  # the reaper closes the dead node's inbox, then empties it
    assert await drain(redis, "n3", deliver) == 1
    assert drained == [b"<message id='before'/>"]
    out.post("n3", JULIET, STANZA, b"<message id='late'/>")  # a node that did not yet hear n3 is gone
    await out.settle()  # type: ignore[misc]
    assert refused == [("n3", [(str(JULIET).encode(), STANZA, b"<message id='late'/>")])]
    assert not await redis.exists(keys.inbox("n3"))  # nothing landed where nobody reads


async def test_every_node_gets_the_same_dialback_secret(redis) -> None:  # type: ignore[no-untyped-def]
    first = await shared_secret(redis, "dialback")
    other = connect_again(redis)
    try:
        assert await shared_secret(other, "dialback") == first and len(first) == 32
    finally:
        await other.aclose()
    assert await shared_secret(redis, "something else") != first


def connect_again(redis):  # type: ignore[no-untyped-def]
    """A second client, as another node has."""
    kwargs = redis.connection_pool.connection_kwargs
    return connect(f"redis://{kwargs['host']}:{kwargs['port']}/0")
