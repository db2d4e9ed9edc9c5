"""Changes to shared data between nodes on a real Redis: another node hears each announcement (never its
own), and after Redis restarted every cache is dropped, since announcements may have been missed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from appliance.cluster.changes import ChangeBus
from appliance.cluster.node import connect
from appliance.core.changes import SharedChanges
from tests.redisserver import RedisServer


@pytest.fixture
async def redis_url(redis_server: RedisServer) -> AsyncIterator[str]:
    client = connect(redis_server.url)
    await client.flushall()
    await client.aclose()
    yield redis_server.url


async def joined(url: str, node: str, heard: asyncio.Queue[tuple[str | None, bytes]]) -> ChangeBus:
    changes = SharedChanges()

    async def listener(key: str | None, data: bytes) -> None:
        heard.put_nowait((key, data))

    changes.listen("example.org:blocking", listener)
    bus = ChangeBus(connect(url), node, changes)
    await bus.start()
    changes.link = bus
    return bus


async def test_other_nodes_hear_changes_and_drop_everything_after_a_redis_restart(
        redis_url: str, redis_server: RedisServer) -> None:
    mine: asyncio.Queue[tuple[str | None, bytes]] = asyncio.Queue()
    theirs: asyncio.Queue[tuple[str | None, bytes]] = asyncio.Queue()
    here, there = await joined(redis_url, "n1", mine), await joined(redis_url, "n2", theirs)
    tasks = [asyncio.create_task(loop()) for bus in (here, there) for loop in (bus.write_forever, bus.follow_forever)]
    try:
        await here.changes.announce("example.org:blocking", "juliet", b"block\nromeo@example.org")
        assert await asyncio.wait_for(theirs.get(), 5) == ("juliet", b"block\nromeo@example.org")

        redis_server.restart(empty=True)  # what was announced meanwhile is unknown: drop everything
        assert await asyncio.wait_for(theirs.get(), 15) == (None, b"")
        assert await asyncio.wait_for(mine.get(), 15) == (None, b"")
        await there.changes.announce("example.org:blocking", "romeo", b"")
        assert await asyncio.wait_for(mine.get(), 5) == ("romeo", b"")
        assert theirs.empty()  # a node does not hear its own announcements
    finally:
        for bus in (here, there):
            bus.running = False
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for bus in (here, there):
            await bus.redis.aclose()
