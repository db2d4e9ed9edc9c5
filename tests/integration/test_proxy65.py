"""SOCKS5 Bytestreams (XEP-0065) through proxy.<host>: two real slixmpp clients (its xep_0065 plugin)
discover the proxy, negotiate a stream, and send a file through it in both directions."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from tests.integration.harness import Client, Harness, start_harness
from tests.integration.stanzas import condition, iq, iq_error

BYTESTREAMS = "http://jabber.org/protocol/bytestreams"


def received(client: Client) -> asyncio.Queue[bytes | None]:
    """What arrives on the client's bytestreams; None when one closes."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    client.add_event_handler("socks5_data", queue.put_nowait)
    client.add_event_handler("socks5_closed", lambda _exc: queue.put_nowait(None))
    return queue


async def read_until_closed(queue: asyncio.Queue[bytes | None], size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await asyncio.wait_for(queue.get(), 10)
        if chunk is None:
            break
        data += chunk
    return data


async def bytestream_users(tmp_path: Path) -> tuple[Harness, Client, Client]:
    harness = await start_harness(tmp_path)
    alice = await harness.client(await harness.user("alice"))
    bob = await harness.client(await harness.user("bob"))
    for client in (alice, bob):
        client.register_plugin("xep_0065", {"auto_accept": True})
    return harness, alice, bob


async def test_a_file_goes_through_the_proxy(tmp_path: Path) -> None:
    harness, alice, bob = await bytestream_users(tmp_path)
    try:
        proxy = f"proxy.{harness.domain}"
        items = await alice.plugin["xep_0030"].get_items(harness.domain)
        assert proxy in {item[0] for item in items["disco_items"]["items"]}
        info = await alice.plugin["xep_0030"].get_info(proxy)
        assert ("proxy", "bytestreams") in {(i[0], i[1]) for i in info["disco_info"]["identities"]}

        at_alice, at_bob = received(alice), received(bob)
        alice_side = await asyncio.wait_for(alice.plugin["xep_0065"].handshake(bob.boundjid.full), 15)
        assert alice_side is not None, "the stream was not established through the proxy"
        payload = os.urandom(300_000)  # a small photo, in several TCP segments
        await alice_side.write(payload)
        data = await read_until_closed(at_bob, len(payload))
        assert hashlib.sha256(data).digest() == hashlib.sha256(payload).digest()

        bob_side = next(iter(bob.plugin["xep_0065"]._sessions.values()))
        await bob_side.write(b"thanks!")
        assert await read_until_closed(at_alice, 7) == b"thanks!"  # the stream relays both ways
        modules = [m for m in harness.server.hosts[harness.domain].modules if m.name == "proxy65"]
        assert modules[0].relay.bytes_relayed == len(payload) + 7  # type: ignore[attr-defined]
    finally:
        await harness.close()


async def test_streamhost_activation_errors_and_socks_methods(tmp_path: Path) -> None:
    harness, alice, bob = await bytestream_users(tmp_path)
    try:
        proxy = f"proxy.{harness.domain}"
        answer = await iq(alice, "get", f"<query xmlns='{BYTESTREAMS}'/>", to=proxy)
        (host,) = answer.iter(f"{{{BYTESTREAMS}}}streamhost")
        modules = [m for m in harness.server.hosts[harness.domain].modules if m.name == "proxy65"]
        assert host.get("jid") == proxy and host.get("port") == str(modules[0].relay.port)  # type: ignore[attr-defined]

        # activating a stream nobody connected for
        error = await iq_error(alice, "set", f"<query xmlns='{BYTESTREAMS}' sid='nothing'>"
                                             f"<activate>{bob.boundjid.full}</activate></query>", to=proxy)
        assert condition(error) == "item-not-found"
        error = await iq_error(alice, "set", f"<query xmlns='{BYTESTREAMS}' sid='s1'/>", to=proxy)
        assert condition(error) == "bad-request"

        # SOCKS5 without the no-authentication method XEP-0065 uses is refused at once
        reader, writer = await asyncio.open_connection("127.0.0.1", modules[0].relay.port)  # type: ignore[attr-defined]
        writer.write(b"\x05\x01\x02")  # only username/password offered: refused
        assert await reader.readexactly(2) == b"\x05\xff"
        writer.close()
    finally:
        await harness.close()
