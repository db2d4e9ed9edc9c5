"""Hostile and broken clients on raw sockets: each gets the right stream error, everyone else carries on."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from appliance.app import Parlour
from appliance.xmpp.ns import NS_BIND, NS_CLIENT, NS_PING, NS_SASL, NS_STANZAS, NS_STREAM, NS_STREAMS, NS_TLS
from appliance.xmpp.parser import Event, Stanza, StreamClose, StreamOpen, StreamParser
from tests.integration.harness import PASSWORD, Client, Harness, free_port, start_harness
from tests.integration.harness import make_config as make_config

TIMEOUT = 10.0
STREAM_ERROR = f"{{{NS_STREAM}}}error"
FEATURES = f"{{{NS_STREAM}}}features"


def header(to: str = "localhost", *, version: str | None = "1.0", xmlns: str = NS_CLIENT) -> bytes:
    version_attr = f" version='{version}'" if version is not None else ""
    return (
        f"<?xml version='1.0'?><stream:stream to='{to}'{version_attr} xmlns='{xmlns}'"
        f" xmlns:stream='{NS_STREAM}'>"
    ).encode()


NO_DECL = header().split(b"?>", 1)[1]


class RawClient:
    """A client on a bare asyncio socket that parses what the server sends with our own parser."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, domain: str) -> None:
        self.reader = reader
        self.writer = writer
        self.domain = domain
        self.parser = StreamParser(max_stanza_size=10_000_000)
        self.events: deque[Event] = deque()
        self.eof = False

    @classmethod
    async def connect(cls, harness: Harness, *, direct_tls: bool = False, source: str | None = None) -> RawClient:
        """Connect to the server's c2s port (or direct TLS port), optionally from another loopback address."""
        context = tls_context(harness) if direct_tls else None
        port = harness.tls_port if direct_tls else harness.port
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1", port, ssl=context, server_hostname=harness.domain if context else None,
                local_addr=(source, 0) if source else None,
            ),
            TIMEOUT,
        )
        return cls(reader, writer, harness.domain)

    async def send(self, data: bytes | str) -> None:
        self.writer.write(data.encode() if isinstance(data, str) else data)
        await self.writer.drain()

    async def next_event(self) -> Event | None:
        """The next thing the server sent; None at EOF."""
        async with asyncio.timeout(TIMEOUT):
            while not self.events:
                if self.eof:
                    return None
                data = await self.reader.read(65_536)
                if not data:
                    self.eof = True
                    continue
                self.events.extend(self.parser.feed(data))
        return self.events.popleft()

    async def element(self) -> etree._Element:
        """The next top-level element (stream headers skipped); fails at the stream's end."""
        while True:
            event = await self.next_event()
            if isinstance(event, Stanza):
                return event.element
            assert not isinstance(event, StreamClose | None), "the server closed the stream"

    async def open(self, to: str | None = None, **kwargs: Any) -> etree._Element:
        """Send a stream header; return the features the server answers with."""
        self.parser.reset()
        await self.send(header(to or self.domain, **kwargs))
        event = await self.next_event()
        assert isinstance(event, StreamOpen), event
        features = await self.element()
        assert features.tag == FEATURES, etree.tostring(features)
        return features

    async def until_closed(self) -> list[etree._Element]:
        """Everything up to the server's `</stream:stream>` (or EOF, which must then follow at once)."""
        elements: list[etree._Element] = []
        while True:
            event = await self.next_event()
            if event is None:
                break
            if isinstance(event, StreamClose):
                async with asyncio.timeout(TIMEOUT):
                    assert await self.reader.read() == b"", "data after the server's stream close"
                self.eof = True
                break
            if isinstance(event, Stanza):
                elements.append(event.element)
        return elements

    async def stream_error(self) -> str:
        """Read to the end of the stream; return the stream error's condition (exactly one)."""
        elements = await self.until_closed()
        errors = [e for e in elements if e.tag == STREAM_ERROR]
        assert len(errors) == 1, [etree.tostring(e) for e in elements]
        assert errors[0] is elements[-1], "the stream error must be the last thing sent"
        conditions = [etree.QName(c).localname for c in errors[0] if etree.QName(c).namespace == NS_STREAMS]
        return next(c for c in conditions if c != "text")

    async def starttls(self, harness: Harness) -> etree._Element:
        await self.send(f"<starttls xmlns='{NS_TLS}'/>")
        proceed = await self.element()
        assert proceed.tag == f"{{{NS_TLS}}}proceed"
        await self.writer.start_tls(tls_context(harness), server_hostname=harness.domain)
        return await self.open()

    async def login(self, harness: Harness, user: str, resource: str, password: str = PASSWORD) -> str:
        """STARTTLS, SASL PLAIN, restart, bind; returns the bound JID."""
        await self.authenticate(harness, user, password)
        reply = await self.bind(resource)
        assert reply.get("type") == "result", etree.tostring(reply)
        return reply.findtext(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid") or ""

    async def authenticate(self, harness: Harness, user: str, password: str = PASSWORD) -> None:
        """STARTTLS, SASL PLAIN and the stream restart, up to the bind feature."""
        await self.open()
        await self.starttls(harness)
        creds = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        await self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{creds}</auth>")
        success = await self.element()
        assert success.tag == f"{{{NS_SASL}}}success", etree.tostring(success)
        features = await self.open()
        assert features.find(f"{{{NS_BIND}}}bind") is not None

    async def bind(self, resource: str) -> etree._Element:
        await self.send(
            f"<iq type='set' id='bind1'><bind xmlns='{NS_BIND}'><resource>{resource}</resource></bind></iq>"
        )
        return await self.element()

    async def close(self) -> None:
        self.writer.close()
        try:
            async with asyncio.timeout(TIMEOUT):
                await self.writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass


def tls_context(harness: Harness) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(harness.ca_file))


def stanza_error(element: etree._Element) -> str:
    assert element.get("type") == "error", etree.tostring(element)
    error = element.find(f"{{{NS_CLIENT}}}error")
    assert error is not None, etree.tostring(element)
    return next(etree.QName(c).localname for c in error if etree.QName(c).namespace == NS_STANZAS)


def mechanisms(features: etree._Element) -> list[str]:
    return [m.text or "" for m in features.iter(f"{{{NS_SASL}}}mechanism")]


class Bystanders:
    """Two well-behaved slixmpp clients connected through a test; they must still chat at the end."""

    def __init__(self, alice: Client, bob: Client) -> None:
        self.alice = alice
        self.bob = bob
        self.rounds = 0

    async def still_chat(self) -> None:
        self.rounds += 1
        assert self.alice.is_connected() and self.bob.is_connected()
        body = f"still here {self.rounds}"
        self.alice.send_message(mto=self.bob.boundjid, mbody=body, mtype="chat")
        while True:
            message = await self.bob.next_message(TIMEOUT)
            if message["body"] == body:
                break
        reply = f"me too {self.rounds}"
        self.bob.send_message(mto=self.alice.boundjid, mbody=reply, mtype="chat")
        while True:
            message = await self.alice.next_message(TIMEOUT)
            if message["body"] == reply:
                break


async def bystanders_on(harness: Harness) -> Bystanders:
    alice = await harness.client(await harness.user("alice"), resource="calm")
    bob = await harness.client(await harness.user("bob"), resource="calm")
    chat = Bystanders(alice, bob)
    await chat.still_chat()
    return chat


@pytest.fixture
async def chat(harness: Harness) -> Bystanders:
    return await bystanders_on(harness)


@pytest.fixture
async def raw(harness: Harness) -> AsyncIterator[RawClient]:
    client = await RawClient.connect(harness)
    yield client
    await client.close()


async def custom_harness(tmp_path: Path, *, sweep_interval: float | None = None, **overrides: Any) -> Harness:
    if sweep_interval is None:
        return await start_harness(tmp_path, **overrides)
    server = Parlour(make_config(tmp_path, **overrides), sweep_interval=sweep_interval)
    await server.start()
    return Harness(server)


# -- the stream header ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "condition"),
    [
        (header("nowhere.example"), "host-unknown"),
        (header("someone@nowhere.example/res"), "host-unknown"),
        (header(xmlns="jabber:server"), "invalid-namespace"),
        (header(xmlns="urn:example:wrong"), "invalid-namespace"),
        (b"<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong' to='localhost' version='1.0'>",
         "invalid-namespace"),
        (header(version="2.0"), "unsupported-version"),
        (header(version=None), "unsupported-version"),
        (b"<?xml version='1.0' encoding='ISO-8859-1'?>" + NO_DECL, "unsupported-encoding"),
    ],
    ids=["unknown-host", "unknown-host-jid", "server-namespace", "other-namespace", "stream-namespace",
         "version-2", "no-version", "latin1"],
)  # fmt: skip
async def test_bad_stream_header(chat: Bystanders, raw: RawClient, data: bytes, condition: str) -> None:
    await raw.send(data)
    assert await raw.stream_error() == condition
    await chat.still_chat()


async def test_stream_error_answers_with_our_own_header_first(harness: Harness, raw: RawClient) -> None:
    await raw.send(b"this is not XML")
    first = await raw.next_event()
    assert isinstance(first, StreamOpen)
    assert first.attrs["from"] == harness.domain and first.attrs["version"] == "1.0"
    assert await raw.stream_error() == "not-well-formed"


# -- bad XML -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "condition"),
    [
        (b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", "not-well-formed"),
        (header() + b"<message><body></message>", "not-well-formed"),
        (header() + b"\xff\xfe\x00<", "not-well-formed"),
        (header() + b"<!-- sneaky -->", "restricted-xml"),
        (b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'>]>" + NO_DECL, "restricted-xml"),
        (header() + b"<iq type='get' id='1'><?pi x?></iq>", "restricted-xml"),
        (header() + b"<message><body>&xxe;</body></message>", "restricted-xml"),
        (header() + b"<message><x:y/></message>", "bad-namespace-prefix"),
        (header() + b"hello", "bad-format"),
    ],
    ids=["http", "mismatched", "bad-utf8", "comment", "dtd", "pi", "entity", "prefix", "text"],
)  # fmt: skip
async def test_bad_xml(chat: Bystanders, raw: RawClient, data: bytes, condition: str) -> None:
    await raw.send(data)
    assert await raw.stream_error() == condition
    await chat.still_chat()


async def test_bad_xml_after_the_header_in_a_later_packet(chat: Bystanders, raw: RawClient) -> None:
    await raw.open()
    await raw.send(b"<message><body>&#0;</body></message>")
    assert await raw.stream_error() == "not-well-formed"
    await chat.still_chat()


async def test_oversized_stanza_is_a_policy_violation(tmp_path: Path) -> None:
    harness = await custom_harness(
        tmp_path, limits=replace(make_config(tmp_path).limits, max_stanza_size=4096)
    )
    try:
        chat = await bystanders_on(harness)
        for payload in (
            b"<iq type='get' id='big'><query xmlns='jabber:iq:register'>" + b"x" * 8192 + b"</query></iq>",
            b"<iq type='get' id='many'>" + b"<a/>" * 2048 + b"</iq>",
            b"<iq type='get' id='endless' to='" + b"x" * 8192,
        ):
            raw = await RawClient.connect(harness)
            await raw.open()
            await raw.send(payload)
            assert await raw.stream_error() == "policy-violation"
            await raw.close()
            await chat.still_chat()
        # A stanza under the limit from a bound client still goes through.
        chat.alice.send_message(mto=chat.bob.boundjid, mbody="y" * 3000, mtype="chat")
        assert (await chat.bob.next_message(TIMEOUT))["body"] == "y" * 3000
    finally:
        await harness.close()


# -- negotiation ---------------------------------------------------------------------------------


async def test_stanza_before_authentication_is_not_authorized(chat: Bystanders, raw: RawClient) -> None:
    await raw.open()
    await raw.send(f"<message to='bob@{raw.domain}/calm' type='chat'><body>spam</body></message>")
    assert await raw.stream_error() == "not-authorized"
    assert chat.bob.messages.empty()
    await chat.still_chat()


async def test_plaintext_offers_only_starttls_and_refuses_auth(chat: Bystanders, raw: RawClient) -> None:
    features = await raw.open()
    starttls = features.find(f"{{{NS_TLS}}}starttls")
    assert starttls is not None and starttls.find(f"{{{NS_TLS}}}required") is not None
    assert mechanisms(features) == []
    creds = base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode()
    await raw.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{creds}</auth>")
    failure = await raw.element()
    assert failure.tag == f"{{{NS_SASL}}}failure"
    assert failure.find(f"{{{NS_SASL}}}encryption-required") is not None
    await chat.still_chat()


async def test_after_starttls_scram_plus_and_plain_are_offered(harness: Harness, raw: RawClient) -> None:
    await raw.open()
    features = await raw.starttls(harness)
    offered = mechanisms(features)
    assert "SCRAM-SHA-256-PLUS" in offered and "SCRAM-SHA-256" in offered and "PLAIN" in offered
    assert features.find(f"{{{NS_TLS}}}starttls") is None


async def test_direct_tls_offers_the_same_mechanisms(tmp_path: Path) -> None:
    # direct_tls_port = 0 disables the listener (the harness default), so ask for a free port.
    harness = await custom_harness(tmp_path, c2s=replace(make_config(tmp_path).c2s, direct_tls_port=free_port()))
    try:
        raw = await RawClient.connect(harness, direct_tls=True)
        features = await raw.open()
        offered = mechanisms(features)
        assert "SCRAM-SHA-256-PLUS" in offered and "PLAIN" in offered
        assert features.find(f"{{{NS_TLS}}}starttls") is None
        await raw.close()
    finally:
        await harness.close()


async def test_raw_login_and_close_handshake(harness: Harness, chat: Bystanders, raw: RawClient) -> None:
    await harness.user("carol")
    assert await raw.login(harness, "carol", "raw") == f"carol@{harness.domain}/raw"
    await raw.send(b"</stream:stream>")
    assert await raw.until_closed() == []
    assert raw.eof
    await chat.still_chat()


async def test_handshake_timeout(tmp_path: Path) -> None:
    harness = await custom_harness(
        tmp_path, sweep_interval=0.05, c2s=replace(make_config(tmp_path).c2s, handshake_timeout=0.5)
    )
    try:
        silent = await RawClient.connect(harness)
        await silent.open()
        assert await silent.stream_error() == "connection-timeout"
        await silent.close()
    finally:
        await harness.close()


async def test_whitespace_keepalives_keep_an_idle_session_alive(tmp_path: Path) -> None:
    c2s = replace(make_config(tmp_path).c2s, idle_timeout=0.5, ping_timeout=0.5)
    harness = await custom_harness(tmp_path, sweep_interval=0.05, c2s=c2s)
    try:
        await harness.user("dave")
        raw = await RawClient.connect(harness)
        await raw.login(harness, "dave", "idle")
        # Several idle and ping timeouts long, yet alive: every keepalive counts as traffic.
        for _ in range(20):
            await raw.send(b" ")
            await asyncio.sleep(0.1)  # the pace of the keepalives, not a synchronisation
        # Nothing came in meanwhile: the answer to our own ping is the very next thing we read.
        await raw.send(f"<iq type='get' id='alive' to='{raw.domain}'><ping xmlns='{NS_PING}'/></iq>")
        answer = await raw.element()
        assert (answer.get("id"), answer.get("type")) == ("alive", "result")
        # Silence: the server pings, gets no answer and times the session out.
        ping = await raw.element()
        assert ping.tag == f"{{{NS_CLIENT}}}iq" and ping.find(f"{{{NS_PING}}}ping") is not None
        assert await raw.stream_error() == "connection-timeout"
        await raw.close()
    finally:
        await harness.close()


# -- resource binding ----------------------------------------------------------------------------


async def test_same_resource_replaces_the_old_session(harness: Harness, chat: Bystanders) -> None:
    await harness.user("erin")
    first = await RawClient.connect(harness)
    second = await RawClient.connect(harness)
    try:
        await first.login(harness, "erin", "phone")
        assert await second.login(harness, "erin", "phone") == f"erin@{harness.domain}/phone"
        assert await first.stream_error() == "conflict"
        await second.send(f"<iq type='get' id='p1' to='{harness.domain}'><ping xmlns='{NS_PING}'/></iq>")
        assert (await second.element()).get("type") == "result"
    finally:
        await first.close()
        await second.close()
    await chat.still_chat()


async def test_same_resource_rejected_when_configured(tmp_path: Path) -> None:
    c2s = replace(make_config(tmp_path).c2s, resource_conflict="reject")
    harness = await custom_harness(tmp_path, c2s=c2s)
    try:
        await harness.user("erin")
        first = await RawClient.connect(harness)
        second = await RawClient.connect(harness)
        await first.login(harness, "erin", "phone")
        await second.authenticate(harness, "erin")
        assert stanza_error(await second.bind("phone")) == "conflict"
        # The first session is untouched and the second may bind another resource.
        await first.send(f"<iq type='get' id='p1' to='{harness.domain}'><ping xmlns='{NS_PING}'/></iq>")
        assert (await first.element()).get("type") == "result"
        assert (await second.bind("tablet")).get("type") == "result"
        await first.close()
        await second.close()
    finally:
        await harness.close()


async def test_too_many_resources(tmp_path: Path) -> None:
    harness = await custom_harness(tmp_path, c2s=replace(make_config(tmp_path).c2s, max_resources=2))
    try:
        await harness.user("frank")
        clients = [await RawClient.connect(harness) for _ in range(3)]
        await clients[0].login(harness, "frank", "one")
        await clients[1].login(harness, "frank", "two")
        await clients[2].authenticate(harness, "frank")
        assert stanza_error(await clients[2].bind("three")) == "resource-constraint"
        for client in clients:
            await client.close()
    finally:
        await harness.close()


# -- stanzas from a bound client -----------------------------------------------------------------


@pytest.fixture
async def bound(harness: Harness, raw: RawClient) -> RawClient:
    await harness.user("mallory")
    await raw.login(harness, "mallory", "evil")
    return raw


async def test_iq_without_id_is_a_bad_request(chat: Bystanders, bound: RawClient) -> None:
    await bound.send(f"<iq type='get'><ping xmlns='{NS_PING}'/></iq>")
    assert stanza_error(await bound.element()) == "bad-request"
    await bound.send(f"<iq type='fetch' id='t1'><ping xmlns='{NS_PING}'/></iq>")
    reply = await bound.element()
    assert stanza_error(reply) == "bad-request" and reply.get("id") == "t1"
    await chat.still_chat()


async def test_unknown_presence_type_is_a_bad_request(chat: Bystanders, bound: RawClient) -> None:
    await bound.send("<presence type='dancing' id='p1'/>")
    reply = await bound.element()
    assert reply.tag == f"{{{NS_CLIENT}}}presence" and reply.get("id") == "p1"
    assert stanza_error(reply) == "bad-request"
    await chat.still_chat()


async def test_malformed_to_is_jid_malformed(chat: Bystanders, bound: RawClient) -> None:
    await bound.send("<message to='@@bad@@' id='m1' type='chat'><body>x</body></message>")
    reply = await bound.element()
    assert reply.tag == f"{{{NS_CLIENT}}}message" and reply.get("id") == "m1"
    assert stanza_error(reply) == "jid-malformed"
    await chat.still_chat()


async def test_spoofed_from_is_invalid_from(chat: Bystanders, bound: RawClient) -> None:
    await bound.send(
        f"<message from='{chat.alice.boundjid}' to='{chat.bob.boundjid}' type='chat'>"
        "<body>it is me</body></message>"
    )
    assert await bound.stream_error() == "invalid-from"
    assert chat.bob.messages.empty()
    await chat.still_chat()


async def test_own_bare_jid_as_from_is_accepted(harness: Harness, chat: Bystanders, bound: RawClient) -> None:
    await bound.send(
        f"<message from='mallory@{harness.domain}' to='{chat.bob.boundjid}' type='chat'>"
        "<body>hi</body></message>"
    )
    message = await chat.bob.next_message(TIMEOUT)
    assert message["body"] == "hi" and str(message["from"]) == f"mallory@{harness.domain}/evil"


# -- shutdown ------------------------------------------------------------------------------------


async def test_shutdown_sends_system_shutdown(tmp_path: Path) -> None:
    harness = await custom_harness(tmp_path)
    await harness.user("gina")
    waiting = await RawClient.connect(harness)
    bound = await RawClient.connect(harness)
    try:
        await waiting.open()
        await bound.login(harness, "gina", "home")
        stopping = asyncio.create_task(harness.server.stop())
        assert await waiting.stream_error() == "system-shutdown"
        assert await bound.stream_error() == "system-shutdown"
        await stopping
    finally:
        await waiting.close()
        await bound.close()
