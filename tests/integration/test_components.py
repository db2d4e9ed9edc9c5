"""External components (XEP-0114) with a real slixmpp ComponentXMPP on the component listener: the
handshake, messages and IQs both ways with a local user, disco#items, a wrong secret, a second
connection for the same component, and secrets changed by a reload."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import slixmpp
from slixmpp.componentxmpp import ComponentXMPP
from slixmpp.xmlstream import ET

from appliance.config.model import ComponentsConfig
from tests.integration.harness import Harness, start_harness

BOT = "bot.localhost"
SECRET = "bot secret 1234"


class Bot(ComponentXMPP):
    """A component that answers version queries and records messages and stream errors."""

    def __init__(self, secret: str, port: int) -> None:
        super().__init__(BOT, secret, "127.0.0.1", port)
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0092", pconfig={"software_name": "Bot", "version": "1.0"})
        self.messages: asyncio.Queue[slixmpp.Message] = asyncio.Queue()
        self.started = asyncio.Event()
        self.errors: asyncio.Queue[str] = asyncio.Queue()
        self.add_event_handler("session_start", lambda _e: self.started.set())
        self.add_event_handler("message", self.messages.put_nowait)
        self.add_event_handler("stream_error", lambda e: self.errors.put_nowait(e["condition"]))


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = await start_harness(tmp_path, components=ComponentsConfig(port=0, secrets=((BOT, SECRET),)))
    try:
        yield h
    finally:
        await h.close()


async def connect_bot(h: Harness, secret: str = SECRET) -> Bot:
    bot = Bot(secret, h.server.ports["component"])
    bot.connect()
    return bot


async def test_messages_and_iqs_both_ways_and_disco_items(harness: Harness) -> None:
    bot = await connect_bot(harness)
    try:
        await asyncio.wait_for(bot.started.wait(), 10)
        romeo = await harness.client(await harness.user("romeo"))
        items = await romeo.plugin["xep_0030"].get_items(jid=harness.domain)
        assert BOT in {item[0] for item in items["disco_items"]["items"]}
        # user -> component: a message, and an IQ answered by the component
        romeo.send_message(mto=f"echo@{BOT}", mbody="hello bot", mtype="chat")
        got = await asyncio.wait_for(bot.messages.get(), 5)
        assert got["body"] == "hello bot" and got["from"] == romeo.boundjid
        romeo.register_plugin("xep_0092")
        version = await romeo.plugin["xep_0092"].get_version(BOT)
        assert version["software_version"]["name"] == "Bot"
        # component -> user: a message from a JID under its domain, and an IQ the user's client answers
        bot.send_message(mto=romeo.boundjid, mfrom=f"echo@{BOT}/x", mbody="hello romeo", mtype="chat")
        reply = await romeo.next_message()
        assert reply["body"] == "hello romeo" and reply["from"] == f"echo@{BOT}/x"
        ping = bot.make_iq_get(queryxmlns="urn:xmpp:ping", ito=romeo.boundjid, ifrom=BOT)
        ping.xml.remove(ping.xml.find("{urn:xmpp:ping}query"))
        ping.xml.append(ET.Element("{urn:xmpp:ping}ping"))
        result = await ping.send(timeout=5)
        assert result["type"] == "result"
    finally:
        bot.disconnect()
    await asyncio.sleep(0.2)
    items = await romeo.plugin["xep_0030"].get_items(jid=harness.domain)
    assert BOT not in {item[0] for item in items["disco_items"]["items"]}  # gone with its connection
    romeo.send_message(mto=f"echo@{BOT}", mbody="anyone?", mtype="chat")
    error = await romeo.next_message()
    assert error["type"] == "error"


async def test_a_wrong_secret_is_not_authorized(harness: Harness) -> None:
    bot = await connect_bot(harness, secret="not the secret")
    try:
        assert await asyncio.wait_for(bot.errors.get(), 10) == "not-authorized"
        assert not bot.started.is_set()
    finally:
        bot.disconnect()


async def test_a_second_connection_is_refused_and_the_first_keeps_working(harness: Harness) -> None:
    first = await connect_bot(harness)
    second: Bot | None = None
    try:
        await asyncio.wait_for(first.started.wait(), 10)
        second = await connect_bot(harness)
        assert await asyncio.wait_for(second.errors.get(), 10) == "conflict"
        romeo = await harness.client(await harness.user("romeo"))
        romeo.send_message(mto=BOT, mbody="still there?", mtype="chat")
        assert (await asyncio.wait_for(first.messages.get(), 5))["body"] == "still there?"
    finally:
        first.disconnect()
        if second is not None:
            second.disconnect()


async def test_a_reload_changes_the_secret_for_the_next_handshake(harness: Harness) -> None:
    server = harness.server
    assert server.core is not None
    new = dataclasses.replace(server.core.config, components=dataclasses.replace(
        server.core.config.components, secrets=((BOT, "a brand new secret"),)))
    assert await server.reload(new) == []
    old = await connect_bot(harness)
    try:
        assert await asyncio.wait_for(old.errors.get(), 10) == "not-authorized"
    finally:
        old.disconnect()
    fresh = await connect_bot(harness, secret="a brand new secret")
    try:
        await asyncio.wait_for(fresh.started.wait(), 10)
    finally:
        fresh.disconnect()


async def test_a_connection_without_a_handshake_in_time_is_closed(harness: Harness) -> None:
    assert harness.server.core is not None
    harness.server.core.components.handshake_timeout = 0.3
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.server.ports["component"])
    writer.write(b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' "
                 b"to='bot.localhost'>")
    received = await asyncio.wait_for(reader.read(), 5)  # read() returns once the server closes
    writer.close()
    assert b"from=\"bot.localhost\"" in received and b"<connection-timeout " in received
    assert received.endswith(b"</stream:stream>")


async def test_a_component_that_does_not_read_is_disconnected(harness: Harness) -> None:
    import hashlib

    from lxml import etree

    core = harness.server.core
    assert core is not None
    core.components.max_send_buffer = 64 * 1024
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.server.ports["component"])
    writer.write(b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' "
                 b"to='bot.localhost'>")
    header = await reader.readuntil(b">")
    header += await reader.readuntil(b">")
    stream_id = header.split(b' id="', 1)[1].split(b'"', 1)[0].decode()
    digest = hashlib.sha1((stream_id + SECRET).encode()).hexdigest()
    writer.write(f"<handshake>{digest}</handshake>".encode())
    assert b"<handshake" in await reader.readuntil(b"/>")
    # From now on the component reads nothing; the server keeps routing to it until its buffer is full.
    body = "x" * 1000
    async with asyncio.timeout(20):
        while BOT in core.components.connected:
            message = etree.fromstring(f"<message xmlns='jabber:client' from='alice@localhost/a' to='{BOT}'>"
                                       f"<body>{body}</body></message>")
            await core.router.route(message, origin=None)
            await asyncio.sleep(0)
    writer.close()
