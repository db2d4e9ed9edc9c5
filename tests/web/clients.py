"""Minimal real clients for the web transports: RFC 7395 over aiohttp's WebSocket client, XEP-0206 over
aiohttp POSTs. They speak the wire protocol directly so the tests see exactly what a browser library would."""

from __future__ import annotations

import asyncio
import base64
import secrets
import ssl
import struct
from collections.abc import Awaitable
from typing import Any

import aiohttp
from lxml import etree

from appliance.xmpp.ns import NS_BIND, NS_BOSH, NS_CLIENT, NS_FRAMING, NS_SASL, NS_STREAM, NS_XBOSH

SASL = f"{{{NS_SASL}}}"
BIND_IQ = (
    f"<iq xmlns='{NS_CLIENT}' type='set' id='bind1'>"
    f"<bind xmlns='{NS_BIND}'><resource>{{}}</resource></bind></iq>"
)


def plain_auth(user: str, password: str) -> str:
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>"


def mechanisms(features: etree._Element) -> list[str]:
    return [m.text or "" for m in features.iter(f"{SASL}mechanism")]


def message(to: str, text: str) -> str:
    return f"<message xmlns='{NS_CLIENT}' to='{to}' type='chat'><body>{text}</body></message>"


class WsClient:
    """One RFC 7395 connection; every received frame is parsed into an element."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.http = session
        self.ws = ws
        self.jid = ""

    @classmethod
    async def connect(
        cls, url: str, *, ssl_context: ssl.SSLContext | None = None, protocols: tuple[str, ...] = ("xmpp",),
        headers: dict[str, str] | None = None,
    ) -> WsClient:
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(url, protocols=protocols, ssl=ssl_context or False, headers=headers)
        except BaseException:
            await session.close()
            raise
        return cls(session, ws)

    async def send(self, frame: str) -> None:
        await self.ws.send_str(frame)

    async def recv(self, timeout: float = 5.0) -> etree._Element:
        message = await asyncio.wait_for(self.ws.receive(), timeout)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        return etree.fromstring(message.data.encode())

    async def recv_tag(self, tag: str, timeout: float = 5.0) -> etree._Element:
        """Skip frames until one with `tag` (presence broadcasts and the like)."""
        while True:
            element = await self.recv(timeout)
            if element.tag == tag:
                return element

    async def open(self, domain: str) -> etree._Element:
        """Send <open/>; return the features that follow the server's <open/>."""
        await self.send(f"<open xmlns='{NS_FRAMING}' to='{domain}' version='1.0'/>")
        opened = await self.recv()
        assert opened.tag == f"{{{NS_FRAMING}}}open", etree.tostring(opened)
        features = await self.recv()
        assert features.tag == f"{{{NS_STREAM}}}features", etree.tostring(features)
        return features

    async def login(self, domain: str, user: str, password: str, resource: str = "web") -> str:
        """Open, SASL PLAIN, reopen, bind; return the bound JID."""
        await self.open(domain)
        await self.send(plain_auth(user, password))
        result = await self.recv()
        assert result.tag == f"{SASL}success", etree.tostring(result)
        await self.open(domain)
        await self.send(BIND_IQ.format(resource))
        bound = await self.recv()
        self.jid = bound.findtext(f".//{{{NS_BIND}}}jid") or ""
        assert self.jid, etree.tostring(bound)
        return self.jid

    async def close(self) -> None:
        if not self.ws.closed:
            await self.ws.close()
        await self.http.close()


class RawWebSocket:
    """RFC 6455 by hand, to see what aiohttp's client hides: each frame's opcode and when TCP ends."""

    TEXT, CLOSE = 0x1, 0x8

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int, path: str, protocol: str = "xmpp") -> RawWebSocket:
        reader, writer = await asyncio.open_connection(host, port)
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        writer.write((
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n"
        ).encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def send(self, opcode: int, payload: bytes) -> None:
        """One final frame, masked as a client must (RFC 6455 §5.3)."""
        mask = secrets.token_bytes(4)
        length = len(payload)
        if length < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        else:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        self.writer.write(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send_text(self, text: str) -> None:
        self.send(self.TEXT, text.encode())

    def send_close(self, code: int = 1000) -> None:
        self.send(self.CLOSE, struct.pack("!H", code))

    async def frame(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """The next (opcode, payload) from the server (whose frames are never masked)."""
        async with asyncio.timeout(timeout):
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            return first & 0x0F, await self.reader.readexactly(length)

    async def tcp_closed(self, timeout: float) -> bool:
        """Whether the server ends TCP within `timeout` seconds (without sending anything more)."""
        try:
            extra = await asyncio.wait_for(self.reader.read(1), timeout)
        except TimeoutError:
            return False
        assert extra == b"", f"unexpected bytes after the Close frame: {extra!r}"
        return True

    def abort(self) -> None:
        self.writer.close()


class BoshClient:
    """One XEP-0206 session over aiohttp POSTs; `post` numbers requests in call order."""

    def __init__(self, url: str, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.url = url
        self.http = aiohttp.ClientSession()
        self.ssl = ssl_context or False
        self.rid = secrets.randbelow(2**40) + 1
        self.sid = ""
        self.jid = ""

    def body(self, payload: str = "", **attrs: str) -> tuple[int, bytes]:
        """A request body with the next rid (and our sid once known)."""
        rid = self.rid
        self.rid += 1
        fields = {"rid": str(rid), **({"sid": self.sid} if self.sid else {}), **attrs}
        text = "".join(f" {k.replace('__', ':')}='{v}'" for k, v in fields.items())
        head = f"<body xmlns='{NS_BOSH}' xmlns:xmpp='{NS_XBOSH}'{text}"
        return rid, (f"{head}>{payload}</body>" if payload else f"{head}/>").encode()

    def post(self, payload: str = "", **attrs: str) -> Awaitable[etree._Element]:
        """Send the next request (its rid is taken now) and return the awaitable answer."""
        _rid, data = self.body(payload, **attrs)
        return self.post_raw(data)

    async def post_raw(self, data: bytes, headers: dict[str, str] | None = None) -> etree._Element:
        headers = {"Content-Type": "text/xml; charset=utf-8", **(headers or {})}
        async with self.http.post(self.url, data=data, ssl=self.ssl, headers=headers) as response:
            assert response.status == 200, (response.status, await response.text())
            return etree.fromstring(await response.read())

    async def start(self, domain: str, **attrs: str) -> etree._Element:
        """Create the session; return the first response (with sid and stream features)."""
        defaults = {"to": domain, "wait": "30", "hold": "1", "xmpp__version": "1.0", "ver": "1.11"}
        answer = await self.post(**{**defaults, **attrs})
        self.sid = answer.get("sid", "")
        return answer

    async def login(self, domain: str, user: str, password: str, resource: str = "bosh") -> str:
        """Create the session, SASL PLAIN, restart, bind; return the bound JID."""
        first = await self.start(domain)
        assert first.get("type") != "terminate", etree.tostring(first)
        assert "PLAIN" in mechanisms(first), etree.tostring(first)
        success = await self.post(plain_auth(user, password))
        assert success.find(f"{SASL}success") is not None, etree.tostring(success)
        restarted = await self.post(to=domain, xmpp__restart="true", xml__lang="en")
        assert restarted.find(f".//{{{NS_BIND}}}bind") is not None, etree.tostring(restarted)
        bound = await self.post(BIND_IQ.format(resource))
        self.jid = bound.findtext(f".//{{{NS_BIND}}}jid") or ""
        assert self.jid, etree.tostring(bound)
        return self.jid

    async def close(self) -> None:
        await self.http.close()


def children(body: etree._Element, tag: str) -> list[etree._Element]:
    return [child for child in body if child.tag == tag]


def dump(element: Any) -> str:
    return etree.tostring(element).decode()
