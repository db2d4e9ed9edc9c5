"""RFC 6120's server-to-server rules where the driver takes part, over real sockets against running Parlours:
a raw TCP (then TLS) client writes the streams a broken or hostile peer would (docs/compliance-rfc6120-s2s.md)."""

from __future__ import annotations

import asyncio
import re
import ssl
from pathlib import Path

from appliance.xmpp import dialback as db
from tests.integration.federated import chat_both_ways, parlour_pair, s2s_route, start_server
from tests.integration.harness import free_port

HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'"
          " xmlns:db='jabber:server:dialback' {attrs} version='1.0'>")
STARTTLS = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
PROCEED = b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"


async def read_until(reader: asyncio.StreamReader, end: bytes, timeout: float = 10) -> bytes:
    """What the server writes up to and including `end`, or up to its end of the connection."""
    data = b""
    async with asyncio.timeout(timeout):
        while end not in data:
            more = await reader.read(65536)
            if not more:
                break
            data += more
    return data


async def exchange(port: int, data: bytes) -> bytes:
    """Open a connection, write `data`, return the server's answer up to its `</stream:stream>`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        return await read_until(reader, b"</stream:stream>")
    finally:
        writer.close()


def client_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # a peer that does not check: dialback authenticates it
    return context


async def test_stream_errors_over_a_real_socket(tmp_path: Path) -> None:
    """host-unknown for a header 'to' we do not serve (§4.9.3.6), improper-addressing for a header 'from'
    that is no domain, not-authorized for a stanza before authentication (§4.9.3.12): each after a
    response header with xml:lang (§4.7.4, §4.9.1.2), and nothing of it reaches a local user."""
    port = free_port()
    a = await start_server(tmp_path / "a", "a.test", s2s_route(port, "b.test", free_port()))
    try:
        juliet = await a.client(await a.user("juliet"))
        reply = await exchange(port, HEADER.format(attrs="from='b.test' to='nobody.test'").encode())
        assert re.match(rb"<\?xml version='1.0'\?><stream:stream [^>]*xml:lang='en'[^>]*><stream:error><host-unknown",
                        reply)
        reply = await exchange(port, HEADER.format(attrs="from='eve@b.test/x' to='a.test'").encode())
        assert b"<stream:stream " in reply and b"<improper-addressing" in reply and b"eve" not in reply
        reply = await exchange(port, HEADER.format(attrs="from='b.test' to='a.test'").encode()
                               + b"<message from='eve@b.test' to='juliet@a.test' type='chat'><body>forged</body>"
                               b"</message>")
        assert b"<stream:features>" in reply and b"<not-authorized" in reply
        juliet.send_message(mto="juliet@a.test/test", mbody="only mine", mtype="chat")
        assert (await juliet.next_message(5))["body"] == "only mine"  # the forged one never came first
    finally:
        await a.close()


async def test_a_failed_tls_handshake_ends_the_connection(tmp_path: Path) -> None:
    """§5.4.3.2: after <proceed/>, bytes that are no TLS handshake end the connection; nothing more goes
    over it in the clear, and a stanza pipelined in the clear is not taken."""
    port = free_port()
    a = await start_server(tmp_path / "a", "a.test", s2s_route(port, "b.test", free_port()))
    try:
        juliet = await a.client(await a.user("juliet"))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HEADER.format(attrs="from='b.test' to='a.test'").encode())
        assert b"<required/>" in await read_until(reader, b"</stream:features>")
        writer.write(STARTTLS)
        assert (await read_until(reader, PROCEED)).endswith(PROCEED)
        writer.write(b"<message from='eve@b.test' to='juliet@a.test'><body>in the clear</body></message>\r\n")
        rest = await read_until(reader, b"\0never\0")  # up to the end of the connection
        writer.close()
        assert b"<" not in rest  # a TLS alert at most
        juliet.send_message(mto="juliet@a.test/test", mbody="only mine", mtype="chat")
        assert (await juliet.next_message(5))["body"] == "only mine"
    finally:
        await a.close()


async def test_connection_limits_per_ip_and_per_domain(tmp_path: Path) -> None:
    """§13.12: an IP over max_connections_per_ip is closed at once, and a domain authenticated on more than
    max_connections_per_domain incoming streams gets <policy-violation/> on the newest; the older stream
    and local chat go on."""
    limit = 4
    async with parlour_pair(tmp_path, "a.test", "b.test", max_connections_per_ip=limit,
                            max_connections_per_domain=1) as (a, b):
        juliet, romeo = await chat_both_ways(a, b)  # b.test now has a.test's stream (bidi carries replies)
        assert a.server.federation is not None and b.server.federation is not None
        federation = b.server.federation.federation
        port = b.server.config.s2s.port

        # a peer that passes for a.test with dialback: b.test asks a.test, which confirms the key
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        opening = HEADER.format(attrs="from='a.test' to='b.test'").encode()
        writer.write(opening)
        await read_until(reader, b"</stream:features>")
        writer.write(STARTTLS)
        await read_until(reader, PROCEED)
        await writer.start_tls(client_tls(), server_hostname="b.test")
        writer.write(opening)
        features = await read_until(reader, b"</stream:features>")
        match = re.search(rb' id="([^"]+)"', features)
        assert match and b"urn:xmpp:features:dialback" in features
        key = db.key(a.server.federation.federation.secret, "b.test", "a.test", match[1].decode())
        writer.write(f"<db:result from='a.test' to='b.test'>{key}</db:result>".encode())
        reply = await read_until(reader, b"</stream:stream>")
        writer.close()
        assert b'type="valid"' in reply and b"<policy-violation" in reply and b"Too many connections" in reply

        # per IP: a.test's streams and more connections fill the places; the next one is closed unanswered
        async with asyncio.timeout(10):
            while sum(bool(c.machine.pairs) for c in federation.incoming) > 1:
                await asyncio.sleep(0.05)  # the refused stream above is on its way out
        before = federation.incoming_per_ip.get("127.0.0.1", 0)
        assert 0 < before < limit
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(limit - before)]
        for r, w in held:
            w.write(opening)
            assert b"<stream:features>" in await read_until(r, b"</stream:features>")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await read_until(reader, b"<") == b""  # closed before it could say anything
        writer.close()
        for _, w in held:
            w.close()
        async with asyncio.timeout(10):
            while federation.incoming_per_ip.get("127.0.0.1", 0) > before:
                await asyncio.sleep(0.05)
        assert b"<stream:features>" in await exchange(port, opening + b"</stream:stream>")  # a place again

        juliet.send_message(mto="romeo@b.test", mbody="still here", mtype="chat")
        assert (await romeo.next_message(10))["body"] == "still here"
