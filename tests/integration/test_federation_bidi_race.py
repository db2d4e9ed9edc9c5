"""Two Parlours connecting to each other at the same moment with bidirectional streams on (XEP-0288, the
default) and SASL EXTERNAL both ways, while users on both sides write before any s2s stream exists: each
message arrives exactly once, in order. a.test's own connection to b.test can be held at the TCP level
(a relay that accepts but forwards only when released), so b.test's stream to a.test is authenticated
while a.test's messages still wait for its own: the order of events that lost every message."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.federated import trusting_each_other
from tests.integration.harness import Client, Harness

COUNT = 25  # messages each way


class HeldRelay:
    """A TCP relay on loopback to `target` that accepts at once but connects and forwards only once released."""

    def __init__(self) -> None:
        self.target = 0
        self.accepted = asyncio.Event()
        self.released = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    def to(self, target: int) -> int:
        """Forward to `target`; the port to dial instead."""
        self.target = target
        return self.port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._pipes:
            task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.set()
        await self.released.wait()
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        for task in (_pipe(reader, up_writer), _pipe(up_reader, writer)):
            self._pipes.add(asyncio.ensure_future(task))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@pytest.fixture
async def relay() -> AsyncIterator[HeldRelay]:
    held = HeldRelay()
    await held.start()
    yield held
    await held.close()


async def _exactly(client: Client, bodies: list[str]) -> None:
    """`client` receives `bodies`, in order, and then nothing more for a second."""
    got = [str((await client.next_message(15))["body"]) for _ in bodies]
    assert got == bodies
    with pytest.raises(TimeoutError):
        extra = await client.next_message(1.0)
        raise AssertionError(f"delivered twice or unexpected: {extra['body']}")


async def _users(a: Harness, b: Harness) -> tuple[Client, Client]:
    return await a.client(await a.user("juliet")), await b.client(await b.user("romeo"))


def _write(client: Client, to: str, prefix: str) -> list[str]:
    bodies = [f"{prefix} {n}" for n in range(COUNT)]
    for body in bodies:
        client.send_message(mto=to, mbody=body, mtype="chat")
    return bodies


def _links(h: Harness) -> set[tuple[bool, str, bool]]:
    assert h.server.federation is not None
    return {(c.outgoing, c.secure_method, c.machine.bidi) for c in h.server.federation.federation.connections()}


async def test_the_peer_authenticates_while_our_own_connection_is_opening(tmp_path: Path, relay: HeldRelay) -> None:
    """juliet's messages wait in a.test for its connection to b.test (held); romeo's open b.test's stream
    to a.test, authenticated with EXTERNAL and bidirectional. a.test must not write its waiting messages on
    that stream between its <success/> and b.test's restarted header (b.test's parser drops them and ends
    the stream): they go on a.test's own connection when it is through, exactly once."""
    async with trusting_each_other(tmp_path, a_reaches_b=relay.to) as (a, b):
        juliet, romeo = await _users(a, b)
        to_romeo = _write(juliet, "romeo@b.test", "to romeo")
        await asyncio.wait_for(relay.accepted.wait(), 10)
        to_juliet = _write(romeo, "juliet@a.test/test", "to juliet")
        await _exactly(juliet, to_juliet)
        relay.released.set()
        await _exactly(romeo, to_romeo)
        for h in (a, b):
            assert _links(h) == {(True, "external", True), (False, "external", True)}, _links(h)


async def test_both_servers_connect_at_once_then_one_stream_closes(tmp_path: Path) -> None:
    """Both sides write at once before any stream exists: two streams, one each way, both bidirectional.
    Both connections are held at the TCP level until both are dialled, then released together (else, on a
    slow machine, one side's stream may be through before the other dials, and it rightly uses that one).
    Then a.test closes its own (idle, say) while juliet writes on: what it wrote before its
    `</stream:stream>` is read, what comes after goes on b.test's stream, no new connection."""
    a_to_b, b_to_a = HeldRelay(), HeldRelay()
    await a_to_b.start()
    await b_to_a.start()
    try:
        async with trusting_each_other(tmp_path, a_reaches_b=a_to_b.to, b_reaches_a=b_to_a.to) as (a, b):
            juliet, romeo = await _users(a, b)
            to_romeo = _write(juliet, "romeo@b.test", "to romeo")
            to_juliet = _write(romeo, "juliet@a.test/test", "to juliet")
            await asyncio.wait_for(asyncio.gather(a_to_b.accepted.wait(), b_to_a.accepted.wait()), 10)
            a_to_b.released.set()
            b_to_a.released.set()
            await asyncio.gather(_exactly(romeo, to_romeo), _exactly(juliet, to_juliet))
            for h in (a, b):
                assert _links(h) == {(True, "external", True), (False, "external", True)}, _links(h)

            assert a.server.federation is not None
            [own] = [c for c in a.server.federation.federation.connections() if c.outgoing]
            more = _write(juliet, "romeo@b.test", "more")
            await asyncio.sleep(0.01)  # some are on the wire, some still in a.test
            own.close()
            later = _write(juliet, "romeo@b.test", "later")
            await _exactly(romeo, more + later)
            await asyncio.wait_for(own.finished.wait(), 10)
            assert _links(a) == {(False, "external", True)}, _links(a)
    finally:
        await a_to_b.close()
        await b_to_a.close()
