"""Idle close of a bidirectional stream (XEP-0288) between two Parlours, from either side, with traffic
racing it: the side that closes keeps reading until the other's `</stream:stream>` (RFC 6120 §4.4), so
what was on the wire arrives; what comes later takes another connection. Nothing lost or duplicated.
(Not necessarily in order: the last stanzas on the closing stream and the first on the next one are
read by two connections at once.)"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from appliance.core.s2s import ServerConnection
from tests.integration.federated import chat_both_ways, parlour_pair
from tests.integration.harness import Client, Harness


def _bidi_link(a: Harness, b: Harness) -> ServerConnection:
    """a.test's stream, carrying both ways once b.test's own connection is gone."""
    assert a.server.federation is not None and b.server.federation is not None
    [link] = [c for c in a.server.federation.federation.connections() if c.outgoing]
    assert link.machine.bidi
    return link


async def _each_once(client: Client, bodies: list[str]) -> Counter[str]:
    """What `client` receives, as many as `bodies` and then nothing more for a second."""
    got = Counter([(await client.next_message(15))["body"] for _ in bodies])
    try:
        extra = await client.next_message(1.0)
    except TimeoutError:
        return got
    raise AssertionError(f"delivered twice or unexpected: {extra['body']}")


async def test_traffic_racing_the_idle_close_from_either_side(tmp_path: Path) -> None:
    async with parlour_pair(tmp_path, "a.test", "b.test") as (a, b):
        juliet, romeo = await chat_both_ways(a, b)
        assert b.server.federation is not None
        for link in [c for c in b.server.federation.federation.connections() if c.outgoing]:
            link.close()  # b.test's own stream goes: a.test's carries both ways
            await asyncio.wait_for(link.finished.wait(), 5)

        # 1. a.test, which opened the stream, closes it while romeo's messages come over it
        link = _bidi_link(a, b)
        bodies = [f"to juliet {n}" for n in range(40)]
        for body in bodies[:30]:
            romeo.send_message(mto="juliet@a.test/test", mbody=body, mtype="chat")
        await asyncio.sleep(0.01)  # some are on the wire, some still in b.test
        link.close()
        for body in bodies[30:]:
            romeo.send_message(mto="juliet@a.test/test", mbody=body, mtype="chat")
        assert await _each_once(juliet, bodies) == Counter(bodies)
        await asyncio.wait_for(link.finished.wait(), 10)

        # 2. now b.test, which accepted a.test's new stream, closes its side while juliet writes
        juliet.send_message(mto="romeo@b.test", mbody="again", mtype="chat")
        assert (await romeo.next_message(10))["body"] == "again"
        assert b.server.federation is not None
        [incoming] = [c for c in b.server.federation.federation.connections() if not c.outgoing and c.machine.pairs]
        bodies = [f"to romeo {n}" for n in range(40)]
        for body in bodies[:30]:
            juliet.send_message(mto="romeo@b.test", mbody=body, mtype="chat")
        await asyncio.sleep(0.01)
        incoming.close()
        for body in bodies[30:]:
            juliet.send_message(mto="romeo@b.test", mbody=body, mtype="chat")
        assert await _each_once(romeo, bodies) == Counter(bodies)


async def test_a_bidi_stream_is_not_idle_while_the_peer_uses_it(tmp_path: Path) -> None:
    """The sweep that closes idle outgoing streams counts what comes in on a bidirectional one too: a
    stream only romeo's replies travel on is in use, not idle."""
    async with parlour_pair(tmp_path, "a.test", "b.test", idle_timeout=0.5) as (a, b):
        juliet, romeo = await chat_both_ways(a, b)
        assert a.server.federation is not None and b.server.federation is not None
        for link in [c for c in b.server.federation.federation.connections() if c.outgoing]:
            link.close()
            await asyncio.wait_for(link.finished.wait(), 5)
        link = _bidi_link(a, b)
        for n in range(6):  # 1.2 s of romeo writing, juliet silent
            romeo.send_message(mto="juliet@a.test/test", mbody=f"still talking {n}", mtype="chat")
            assert (await juliet.next_message(10))["body"] == f"still talking {n}"
            a.server.federation.federation.sweep()
            await asyncio.sleep(0.2)
        assert not link.closed
        await asyncio.sleep(0.6)  # now nobody writes: idle
        a.server.federation.federation.sweep()
        await asyncio.wait_for(link.finished.wait(), 5)
