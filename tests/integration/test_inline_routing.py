"""A client's stanzas are routed in the read that brings them; a worker task exists only while one waits."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from tests.integration.harness import Harness, make_config, start_harness


@contextmanager
def tasks_made() -> Iterator[list[asyncio.Task[Any]]]:
    """Every task the running loop makes meanwhile (names are set after the factory returns)."""
    loop = asyncio.get_running_loop()
    made: list[asyncio.Task[Any]] = []
    previous = loop.get_task_factory()

    def factory(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        made.append(task)
        return task

    loop.set_task_factory(factory)  # type: ignore[arg-type]
    try:
        yield made
    finally:
        loop.set_task_factory(previous)


def c2s_workers(made: list[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    return [task for task in made if task.get_name().startswith("c2s-")]


async def test_messages_to_an_online_user_need_no_worker_task(tmp_path: Path) -> None:
    """Without a message archive (whose durable write each message waits for, by design), a chat message
    to an online user is routed and written within the read that brought it."""
    hosts = tuple(
        replace(h, modules=replace(h.modules, disabled=(*h.modules.disabled, "mam")))
        for h in make_config(tmp_path).hosts
    )
    harness = await start_harness(tmp_path, hosts=hosts)
    try:
        await exchange_without_workers(harness)
    finally:
        await harness.close()


async def exchange_without_workers(harness: Harness) -> None:
    alice = await harness.user("alice")
    bob = await harness.user("bob")
    a = await harness.client(alice)
    b = await harness.client(bob)
    a.send_message(mto=bob, mbody="warm-up", mtype="chat")  # loads both blocklists from storage (a wait)
    assert (await b.next_message())["body"] == "warm-up"
    with tasks_made() as made:
        for i in range(20):
            a.send_message(mto=bob, mbody=f"m{i}", mtype="chat")
        bodies = [(await b.next_message())["body"] for _ in range(20)]
    assert bodies == [f"m{i}" for i in range(20)]
    assert c2s_workers(made) == []  # before: one task per read


async def test_a_stanza_that_waits_keeps_the_order_of_those_after_it(harness: Harness) -> None:
    """A message for an offline account waits for storage in a worker task; the next message, to an online
    user, leaves only after it, and the offline one is delivered at the next login."""
    alice = await harness.user("alice")
    bob = await harness.user("bob")
    carol = await harness.user("carol")
    a = await harness.client(alice)
    b = await harness.client(bob)
    with tasks_made() as made:
        a.send_message(mto=carol, mbody="stored", mtype="chat")
        a.send_message(mto=bob, mbody="after", mtype="chat")
        assert (await b.next_message())["body"] == "after"
    stores = harness.server.stores
    assert stores is not None
    assert await stores.offline.count(harness.domain, "carol") == 1  # stored before "after" went out
    assert len(c2s_workers(made)) >= 1  # the storage wait ran in a worker
    c = await harness.client(carol)
    assert (await c.next_message())["body"] == "stored"
