"""Hostile XML over every client transport (issue 13): each attack gets its stream error and the server
stays healthy, which another user logging in afterwards shows.

TCP and direct TLS see a stream header, then the attack; WebSocket gets it as one message after <open/>;
BOSH inside (or, for what must precede the root, before) the request's <body/>, answered with
type='terminate' and the stream error inside (XEP-0206 §8: condition='remote-stream-error'). What a
transport's framing refuses before any XML is parsed is its own answer: a BOSH request over the size
limit gets HTTP 413, and invalid UTF-8 cannot be a WebSocket text message at all (1007). KNOWN_GAPS are
reported as xfail (the server stays healthy, but the client does not get to read the stream error).
Over TCP and TLS the server keeps reading (and dropping) an attacker's input for a moment after its
stream error, so the connection is not reset before the client has read it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from lxml import etree

from appliance.xmpp.ns import NS_BOSH, NS_FRAMING, NS_STREAM, NS_STREAMS
from tests.integration.harness import Harness, make_config, start_harness
from tests.integration.test_hostile import NO_DECL, RawClient

TIMEOUT = 10.0
MB = 1024 * 1024

# name: (bytes placed before the root, bytes inside the stream, stream error)
ATTACKS: dict[str, tuple[bytes, bytes, str]] = {
    "dtd": (b"<!DOCTYPE x [<!ENTITY a 'aaaa'>]>", b"", "restricted-xml"),
    "billion-laughs": (b"<!DOCTYPE x [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>]>",
                       b"<message><body>&b;</body></message>", "restricted-xml"),
    "entity": (b"", b"<message><body>&xxe;</body></message>", "restricted-xml"),
    "pi": (b"", b"<iq type='get' id='1'><?evil x?></iq>", "restricted-xml"),
    "comment": (b"", b"<message><!-- hidden --></message>", "restricted-xml"),
    "10mb-stanza": (b"", b"<message><body>" + b"x" * (10 * MB) + b"</body></message>", "policy-violation"),
    "100k-nesting": (b"", b"<a>" * 100_000, "policy-violation"),
    "million-attributes": (b"", b"<message " + b"".join(b"a%d='' " % i for i in range(1_000_000)) + b"/>",
                           "policy-violation"),
    "huge-namespaces": (b"", b"<message " + b"".join(b"xmlns:p%d='urn:x:%d' " % (i, i) for i in range(200_000))
                        + b"/>", "policy-violation"),
    "long-namespace": (b"", b"<message xmlns:p='urn:" + b"n" * (10 * MB) + b"'/>", "policy-violation"),
    "bad-utf8": (b"", b"<message><body>\xff\xfe\xc0\x80</body></message>", "not-well-formed"),
    "nul": (b"", b"<message><body>a\x00b</body></message>", "not-well-formed"),
}

# What a transport's framing answers by itself, before XML: (transport, attack) -> expected answer.
FRAMING = {
    ("websocket", "bad-utf8"): "close 1007",
    ("bosh", "10mb-stanza"): "http 413",
    ("bosh", "million-attributes"): "http 413",
    ("bosh", "huge-namespaces"): "http 413",
    ("bosh", "long-namespace"): "http 413",
}


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    cfg = make_config(tmp_path)
    http = replace(cfg.http, consider_websocket_secure=True, consider_bosh_secure=True)
    h = await start_harness(tmp_path, http=http)
    try:
        yield h
    finally:
        await h.close()


def stream_condition(error: etree._Element) -> str:
    assert error.tag == f"{{{NS_STREAM}}}error", etree.tostring(error)
    return next(etree.QName(c).localname for c in error if etree.QName(c).namespace == NS_STREAMS
                and etree.QName(c).localname != "text")


async def over_tcp(h: Harness, prolog: bytes, payload: bytes, *, direct_tls: bool) -> str:
    raw = await RawClient.connect(h, direct_tls=direct_tls)
    try:
        if prolog:
            await raw.send(b"<?xml version='1.0'?>" + prolog + NO_DECL + payload)
        else:
            await raw.open()
            await send_tolerant(raw, payload)
        return await raw.stream_error()
    finally:
        await raw.close()


async def send_tolerant(raw: RawClient, data: bytes) -> None:
    """Write the attack; the server may well close the connection before it has all of it."""
    try:
        for start in range(0, len(data), MB):
            raw.writer.write(data[start : start + MB])
            await raw.writer.drain()
    except (ConnectionError, OSError):
        pass


async def over_websocket(h: Harness, prolog: bytes, payload: bytes) -> str:
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"ws://127.0.0.1:{h.http_port}/xmpp-websocket", protocols=("xmpp",),
                                   max_msg_size=0)
        await ws.send_str(f"<open xmlns='{NS_FRAMING}' to='{h.domain}' version='1.0'/>")
        if payload.startswith(b"<a>"):
            payload = payload.replace(b"<a>", b"<a xmlns='jabber:client'>", 1)
        elif payload:
            payload = payload.replace(b"<message", b"<message xmlns='jabber:client'", 1).replace(
                b"<iq", b"<iq xmlns='jabber:client'", 1)
        with contextlib.suppress(ConnectionError, OSError):  # a text message, whatever its bytes
            await ws.send_frame(prolog + payload, aiohttp.WSMsgType.TEXT)
        errors: list[str] = []
        async with asyncio.timeout(TIMEOUT):
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    element = etree.fromstring(message.data.encode())
                    if element.tag == f"{{{NS_STREAM}}}error":
                        errors.append(stream_condition(element))
                elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING):
                    break
        if errors:
            return errors[0]
        return f"close {ws.close_code}"


async def over_bosh(h: Harness, prolog: bytes, payload: bytes) -> str:
    from tests.web.clients import BoshClient

    bosh = BoshClient(f"http://127.0.0.1:{h.http_port}/http-bind")
    try:
        await bosh.start(h.domain)
        _rid, body = bosh.body()
        head = body[:-2]  # "<body ...", without "/>"
        data = prolog + head + b">" + payload + b"</body>"
        async with bosh.http.post(bosh.url, data=data, headers={"Content-Type": "text/xml; charset=utf-8"}) as r:
            if r.status != 200:
                return f"http {r.status}"
            answer = etree.fromstring(await r.read())
        assert answer.tag == f"{{{NS_BOSH}}}body" and answer.get("type") == "terminate", etree.tostring(answer)
        error = answer.find(f"{{{NS_STREAM}}}error")
        assert error is not None, etree.tostring(answer)
        assert answer.get("condition") == "remote-stream-error", etree.tostring(answer)
        return stream_condition(error)
    finally:
        await bosh.close()


OVERSIZED = ("10mb-stanza", "million-attributes", "huge-namespaces", "long-namespace")
# Known gap (issue 13), kept visible: aiohttp drops a WebSocket whose message is over its size limit
# (the client sees 1006) before the session can send a stream error.
KNOWN_GAPS = {("websocket", a) for a in (*OVERSIZED, "100k-nesting")}


@pytest.mark.parametrize("attack", list(ATTACKS))
@pytest.mark.parametrize("transport", ["tcp", "tls", "websocket", "bosh"])
async def test_xml_attack(harness: Harness, transport: str, attack: str) -> None:
    prolog, payload, condition = ATTACKS[attack]
    try:
        if transport in ("tcp", "tls"):
            got = await over_tcp(harness, prolog, payload, direct_tls=transport == "tls")
        elif transport == "websocket":
            got = await over_websocket(harness, prolog, payload)
        else:
            got = await over_bosh(harness, prolog, payload)
    except (ConnectionError, OSError) as exc:
        got = f"connection lost ({exc.__class__.__name__})"
    client = await harness.client(await harness.user("bob"))  # whatever happened, the server is fine
    assert client.boundjid.bare == f"bob@{harness.domain}"
    expected = FRAMING.get((transport, attack), condition)
    if got != expected and (transport, attack) in KNOWN_GAPS:
        pytest.xfail(f"expected {expected}, got {got}")
    assert got == expected
