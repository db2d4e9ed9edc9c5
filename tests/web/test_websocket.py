"""XMPP over WebSocket (RFC 7395) against a real server: login, messages with a TCP client, limits."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import aiohttp
import pytest

from appliance.xmpp.ns import NS_CLIENT, NS_FRAMING, NS_SASL, NS_STREAM, NS_STREAMS
from tests.integration.harness import PASSWORD, Harness
from tests.web.clients import RawWebSocket, WsClient, mechanisms, message, plain_auth
from tests.web.conftest import trust, web_harness

MESSAGE = f"{{{NS_CLIENT}}}message"


def url(h: Harness, *, https: bool = False) -> str:
    return f"wss://localhost:{h.https_port}/xmpp-websocket" if https else \
        f"ws://127.0.0.1:{h.http_port}/xmpp-websocket"


async def test_login_and_chat_with_a_tcp_client(harness: Harness) -> None:
    alice = await harness.user("alice")
    bob_jid = await harness.user("bob")
    bob = await harness.client(bob_jid)
    ws = await WsClient.connect(url(harness))
    try:
        jid = await ws.login(harness.domain, "alice", PASSWORD)
        assert jid == f"{alice}/web"
        await ws.send(f"<presence xmlns='{NS_CLIENT}'/>")
        await ws.send(message(bob_jid, "hello from the browser"))
        got = await bob.next_message()
        assert got["body"] == "hello from the browser"
        assert str(got["from"]) == jid

        bob.send_message(mto=jid, mbody="hello from TCP", mtype="chat")
        answer = await ws.recv_tag(MESSAGE)
        assert answer.findtext(f"{{{NS_CLIENT}}}body") == "hello from TCP"
        assert answer.get("from", "").startswith(bob_jid)
    finally:
        await ws.close()


async def test_https_websocket_is_encrypted_without_any_setting(tmp_path: Path) -> None:
    h = await web_harness(tmp_path)  # no consider_websocket_secure
    probe = await WsClient.connect(url(h, https=True), ssl_context=trust(h))
    ws = await WsClient.connect(url(h, https=True), ssl_context=trust(h))
    try:
        offered = mechanisms(await probe.open(h.domain))
        assert "PLAIN" in offered and "SCRAM-SHA-256" in offered
        carol = await h.user("carol")
        assert await ws.login(h.domain, "carol", PASSWORD) == f"{carol}/web"
    finally:
        await probe.close()
        await ws.close()
        await h.close()


async def test_plain_http_is_not_encrypted_so_no_login(tmp_path: Path) -> None:
    h = await web_harness(tmp_path)  # require_encryption stays on; no proxy setting
    ws = await WsClient.connect(url(h))
    try:
        features = await ws.open(h.domain)
        assert mechanisms(features) == []
        await h.user("dave")
        await ws.send(plain_auth("dave", PASSWORD))
        failure = await ws.recv()
        assert failure.tag == f"{{{NS_SASL}}}failure"
        assert failure.find(f"{{{NS_SASL}}}encryption-required") is not None
    finally:
        await ws.close()
        await h.close()


async def test_the_xmpp_subprotocol_is_required(harness: Harness) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await WsClient.connect(url(harness), protocols=())
    assert caught.value.status == 400


async def test_origin_list_is_enforced(tmp_path: Path) -> None:
    h = await web_harness(tmp_path, allowed_origins=("https://chat.example.org",))
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await WsClient.connect(url(h), headers={"Origin": "https://evil.example"})
        assert caught.value.status == 403
        ws = await WsClient.connect(url(h), headers={"Origin": "https://chat.example.org"})
        await ws.open(h.domain)
        await ws.close()
    finally:
        await h.close()


async def test_a_message_must_be_one_complete_element(harness: Harness) -> None:
    ws = await WsClient.connect(url(harness))
    try:
        await ws.open(harness.domain)
        await ws.send(f"<iq xmlns='{NS_CLIENT}' type='get' id='1'>")
        error = await ws.recv()
        assert error.tag == f"{{{NS_STREAM}}}error"
        assert error.find(f"{{{NS_STREAMS}}}bad-format") is not None
        close = await ws.recv()
        assert close.tag == f"{{{NS_FRAMING}}}close"
        final = await asyncio.wait_for(ws.ws.receive(), 5)
        assert final.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    finally:
        await ws.close()


async def test_stanzas_before_open_are_refused(harness: Harness) -> None:
    ws = await WsClient.connect(url(harness))
    try:
        await ws.send(message("someone@localhost", "too early"))
        frames = [await ws.recv(), await ws.recv()]
        tags = [f.tag for f in frames]
        assert f"{{{NS_STREAM}}}error" in tags
    finally:
        await ws.close()


async def test_close_is_answered_with_close(harness: Harness) -> None:
    ws = await WsClient.connect(url(harness))
    try:
        await ws.open(harness.domain)
        await ws.send(f"<close xmlns='{NS_FRAMING}'/>")
        close = await ws.recv()
        assert close.tag == f"{{{NS_FRAMING}}}close"
        final = await asyncio.wait_for(ws.ws.receive(), 5)
        assert final.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.ws.close_code == aiohttp.WSCloseCode.OK  # a Close frame came, not 1006
    finally:
        await ws.close()


async def expect_closing_handshake(raw: RawWebSocket, *texts: str) -> None:
    """RFC 7395 §3.6 then RFC 6455 §7: the text frames (ending in <close/>), the server's Close frame
    with 1000, TCP kept open until the client's Close frame arrives, then TCP ended by the server."""
    for text in (*texts, "<close "):
        opcode, payload = await raw.frame()
        assert (opcode, payload.decode()[: len(text)]) == (RawWebSocket.TEXT, text)
    assert await raw.frame() == (RawWebSocket.CLOSE, struct.pack("!H", 1000))
    assert not await raw.tcp_closed(0.5), "the server ended TCP before the client's Close frame"
    raw.send_close()
    assert await raw.tcp_closed(5)


async def test_xmpp_close_then_websocket_close_handshake(harness: Harness) -> None:
    raw = await RawWebSocket.connect("127.0.0.1", harness.http_port, "/xmpp-websocket")
    try:
        raw.send_text(f"<open xmlns='{NS_FRAMING}' to='{harness.domain}' version='1.0'/>")
        assert (await raw.frame())[1].startswith(b"<open ")
        assert (await raw.frame())[1].startswith(b"<stream:features")
        raw.send_text(f"<close xmlns='{NS_FRAMING}'/>")
        await expect_closing_handshake(raw)
    finally:
        raw.abort()


async def test_server_initiated_close_waits_for_the_client(harness: Harness) -> None:
    raw = await RawWebSocket.connect("127.0.0.1", harness.http_port, "/xmpp-websocket")
    try:
        raw.send_text(message("someone@localhost", "before any <open/>"))
        await expect_closing_handshake(raw, "<open ", "<stream:error ")
    finally:
        raw.abort()


async def test_a_frame_larger_than_max_stanza_size_closes_the_socket(harness: Harness) -> None:
    ws = await WsClient.connect(url(harness))
    try:
        await ws.open(harness.domain)
        huge = "x" * (harness.server.config.limits.max_stanza_size + 10)
        await ws.send(message("someone@localhost", huge))
        final = await asyncio.wait_for(ws.ws.receive(), 5)
        assert final.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    finally:
        await ws.close()
