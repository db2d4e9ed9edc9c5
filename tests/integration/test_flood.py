"""One client flooding another must not starve the server (issue 13): traffic shaping per connection.

A logged-in client sends large messages as fast as its connection lets it, over TCP, WebSocket and BOSH.
The server takes no more from it than its rate allows (a bound that holds however slow the machine is:
burst + rate x elapsed), the flood keeps going rather than being cut off, and another user logs in
meanwhile. benchmarks/flood.py shows the memory and login-time figures of the full-size flood.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from appliance.core.session_options import StreamManagementOptions
from appliance.xmpp.jid import JID
from appliance.xmpp.ns import NS_CLIENT, NS_SM
from tests.integration.harness import PASSWORD, Harness, make_config, start_harness
from tests.integration.test_hostile import RawClient
from tests.web.clients import BoshClient, WsClient

RATE = 32 * 1024  # bytes per second a logged-in client may send here
SIZE = 16 * 1024  # body of each flood message
MAX_STANZA = 64 * 1024  # also the byte burst (larger than RATE x burst)
ONE_READ = 256 * 1024  # the most asyncio reads from a socket at once
TIMEOUT = 15.0


async def flood_harness(tmp_path: Path) -> Harness:
    cfg = make_config(tmp_path)
    limits = replace(cfg.limits, rate=RATE, burst=1.0, max_stanza_size=MAX_STANZA)
    http = replace(cfg.http, consider_websocket_secure=True, consider_bosh_secure=True)
    return await start_harness(tmp_path, limits=limits, http=http)


def flood_message(to: str, n: int) -> str:
    return f"<message xmlns='{NS_CLIENT}' to='{to}' type='chat' id='f{n}'><body>{'x' * SIZE}</body></message>"


Sender = Callable[[str], Awaitable[None]]


async def tcp_flooder(harness: Harness) -> tuple[Sender, Callable[[], Awaitable[None]]]:
    raw = await RawClient.connect(harness)
    await raw.login(harness, "alice", "flood")
    return raw.send, raw.close


async def websocket_flooder(harness: Harness) -> tuple[Sender, Callable[[], Awaitable[None]]]:
    ws = await WsClient.connect(f"ws://127.0.0.1:{harness.http_port}/xmpp-websocket")
    await ws.login(harness.domain, "alice", PASSWORD, "flood")
    return ws.send, ws.close


async def bosh_flooder(harness: Harness) -> tuple[Sender, Callable[[], Awaitable[None]]]:
    bosh = BoshClient(f"http://127.0.0.1:{harness.http_port}/http-bind")
    await bosh.login(harness.domain, "alice", PASSWORD)

    inflight: set[asyncio.Task[object]] = set()

    async def send(frame: str) -> None:
        # As many requests open as the session allows (hold + 1): each new one frees the one held before.
        while len(inflight) >= 2:
            await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
        task: asyncio.Task[object] = asyncio.ensure_future(bosh.post(frame))
        inflight.add(task)
        task.add_done_callback(inflight.discard)

    async def close() -> None:
        for task in list(inflight):
            task.cancel()
        await asyncio.gather(*inflight, return_exceptions=True)
        await bosh.close()

    return send, close


FLOODERS = {"tcp": tcp_flooder, "websocket": websocket_flooder, "bosh": bosh_flooder}


@pytest.mark.parametrize("transport", list(FLOODERS))
async def test_a_flooding_client_is_slowed_to_its_rate_and_others_still_log_in(
    tmp_path: Path, transport: str
) -> None:
    harness = await flood_harness(tmp_path)
    try:
        await harness.user("alice")
        bob = await harness.client(await harness.user("bob"))
        carol = await harness.user("carol")
        send, close = await FLOODERS[transport](harness)
        sent = 0

        async def flood() -> None:
            nonlocal sent
            for n in range(10_000):  # 160 MiB: far more than the test lets through
                await send(flood_message(str(bob.boundjid.bare), n))
                sent = n + 1

        stats = harness.server.core.stats
        before = stats.get("messages_in", 0)
        started = time.monotonic()
        flooding = asyncio.create_task(flood())
        await asyncio.sleep(1.5)
        other = await harness.client(carol)  # logs in while the flood goes on
        assert other.boundjid.bare == carol
        await bob.next_message(TIMEOUT)  # the flood gets through, slowly
        elapsed = time.monotonic() - started
        taken = stats.get("messages_in", 0) - before
        # The burst, then the rate, plus what one read (or two BOSH requests) took before the pause.
        allowed = MAX_STANZA + RATE * elapsed + ONE_READ
        assert 1 <= taken <= allowed / SIZE, (taken, elapsed)
        assert not flooding.done(), "the flooder should be held back, not cut off or finished"
        flooding.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await flooding
        await close()
    finally:
        await harness.close()


def established(sock: socket.socket) -> bool:
    """Whether the kernel still has `sock`'s connection established (Linux: /proc/net/tcp)."""
    try:
        port = f"{sock.getsockname()[1]:04X}"
    except OSError:  # the client has already closed its socket: the server's close reached it
        return False
    with open("/proc/net/tcp") as table:
        return any(line.split()[1].endswith(f":{port}") and line.split()[3] == "01" for line in table)


async def tcp_reader(harness: Harness) -> tuple[str, socket.socket]:
    raw = await RawClient.connect(harness)
    jid = await raw.login(harness, "bob", "slow")
    return jid, raw.writer.get_extra_info("socket")


async def websocket_reader(harness: Harness) -> tuple[str, socket.socket]:
    ws = await WsClient.connect(f"ws://127.0.0.1:{harness.http_port}/xmpp-websocket")
    jid = await ws.login(harness.domain, "bob", PASSWORD, "slow")
    return jid, ws.ws.get_extra_info("socket")


READERS = {"tcp": tcp_reader, "websocket": websocket_reader}


@pytest.mark.parametrize("transport", list(READERS))
async def test_a_reader_that_falls_behind_is_disconnected(tmp_path: Path, transport: str) -> None:
    cfg = make_config(tmp_path)
    limits = replace(cfg.limits, rate=1024**3)  # the sender is not what is tested here
    http = replace(cfg.http, consider_websocket_secure=True)
    harness = await start_harness(tmp_path, limits=limits, http=http)
    try:
        bob = await harness.user("bob")
        alice = await harness.client(await harness.user("alice"))
        jid, sock = await READERS[transport](harness)  # logged in, then reads nothing
        body = "y" * 200_000
        for _ in range(200):  # 40 MB: more than socket buffers and the session's output bound
            alice.send_message(mto=jid, mbody=body, mtype="chat")
        async with asyncio.timeout(60):  # the server gives up on bob's session ...
            while harness.server.sessions.count_for(JID.parse(bob)):
                await asyncio.sleep(0.1)
        async with asyncio.timeout(TIMEOUT):  # ... and on his connection, though he never read a byte
            while established(sock):
                await asyncio.sleep(0.1)
        assert alice.is_connected()
    finally:
        await harness.close()


async def test_a_reader_that_never_acknowledges_is_disconnected_not_its_senders(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    host = cfg.hosts[0]
    sm_options = replace(host.modules.of(StreamManagementOptions), max_queue=10)
    host = replace(host, modules=host.modules.with_options(sm_options))
    http = replace(cfg.http, consider_websocket_secure=True)
    harness = await start_harness(tmp_path, hosts=(host,), http=http)
    try:
        bob = await harness.user("bob")
        alice = await harness.client(await harness.user("alice"))
        carol = await harness.client(await harness.user("carol"))
        ws = await WsClient.connect(f"ws://127.0.0.1:{harness.http_port}/xmpp-websocket")
        jid = await ws.login(harness.domain, "bob", PASSWORD, "phone")
        await ws.send(f"<enable xmlns='{NS_SM}' resume='true'/>")  # and never acknowledges anything
        for n in range(15):
            alice.send_message(mto=jid, mbody=f"to bob {n}", mtype="chat")
        async with asyncio.timeout(TIMEOUT):
            while harness.server.sessions.count_for(JID.parse(bob)):
                await asyncio.sleep(0.05)
        alice.send_message(mto=carol.boundjid, mbody="still here", mtype="chat")
        assert (await carol.next_message(TIMEOUT))["body"] == "still here"
        assert alice.is_connected()
        await ws.close()
    finally:
        await harness.close()


async def test_a_hibernated_session_keeps_a_bounded_queue(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    limits = replace(cfg.limits, rate=1024**3)  # the sender is not what is tested here
    harness = await start_harness(tmp_path, limits=limits, http=replace(cfg.http, consider_websocket_secure=True))
    try:
        bob = await harness.user("bob")
        alice = await harness.client(await harness.user("alice"))
        ws = await WsClient.connect(f"ws://127.0.0.1:{harness.http_port}/xmpp-websocket")
        jid = await ws.login(harness.domain, "bob", PASSWORD, "phone")
        await ws.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
        await ws.recv_tag(f"{{{NS_SM}}}enabled")
        await ws.http.close()  # gone without a word: the session waits to be resumed
        async with asyncio.timeout(TIMEOUT):
            while not getattr(harness.server.sessions.get(JID.parse(jid)), "hibernated_at", 0):
                await asyncio.sleep(0.05)
        body = "z" * 200_000
        for _ in range(60):  # 12 MB, far fewer stanzas than the queue's count limit (1000)
            alice.send_message(mto=jid, mbody=body, mtype="chat")
        async with asyncio.timeout(30):  # the session gives up instead of holding it all
            while harness.server.sessions.count_for(JID.parse(bob)):
                await asyncio.sleep(0.1)
        assert alice.is_connected()
    finally:
        await harness.close()
