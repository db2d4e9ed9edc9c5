"""A small raw-XML XMPP client for the conformance suite: real TCP, lxml parsing, no client library.

    async with connect(server, "alice") as c:                  # PLAIN, bind a random resource
        reply = await c.iq(f"<iq type='get' to='{server.domain}'><query xmlns='{NS['disco']}'/></iq>")
        await c.send("<message to='bob@...'><body>hi</body></message>")
        msg = await c.expect("self::c:message[c:body='hi']")

    s = await raw_open(server)                                   # pre-auth stream tests
    s = await raw_open(server, header="<?xml version='1.0'?><stream:stream ...>")

`expect` takes an XPath (evaluated on each top-level element with the prefixes in NS), a callable or
None (the next element); elements that do not match stay in the inbox for later calls.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING

from lxml import etree

if TYPE_CHECKING:
    from tests.conformance.conftest import ServerInfo

NS = {
    "stream": "http://etherx.jabber.org/streams",
    "c": "jabber:client",
    "streams": "urn:ietf:params:xml:ns:xmpp-streams",
    "stanzas": "urn:ietf:params:xml:ns:xmpp-stanzas",
    "sasl": "urn:ietf:params:xml:ns:xmpp-sasl",
    "tls": "urn:ietf:params:xml:ns:xmpp-tls",
    "bind": "urn:ietf:params:xml:ns:xmpp-bind",
    "session": "urn:ietf:params:xml:ns:xmpp-session",
    "disco": "http://jabber.org/protocol/disco#info",
    "items": "http://jabber.org/protocol/disco#items",
    "roster": "jabber:iq:roster",
    "register": "jabber:iq:register",
    "ping": "urn:xmpp:ping",
    "version": "jabber:iq:version",
    "time": "urn:xmpp:time",
    "last": "jabber:iq:last",
    "vcard": "vcard-temp",
    "private": "jabber:iq:private",
    "blocking": "urn:xmpp:blocking",
    "data": "jabber:x:data",
    "delay": "urn:xmpp:delay",
}

Match = str | Callable[[etree._Element], bool] | None
_ids = itertools.count(1)


def new_id(prefix: str = "c") -> str:
    return f"{prefix}{next(_ids)}-{uuid.uuid4().hex[:6]}"


def q(name: str) -> str:
    """Clark notation for a prefixed name: q('c:message') -> '{jabber:client}message'."""
    prefix, _, local = name.partition(":")
    return f"{{{NS[prefix]}}}{local}"


def _matcher(match: Match) -> Callable[[etree._Element], bool]:
    if match is None:
        return lambda _e: True
    if callable(match):
        return match
    xpath = etree.XPath(match, namespaces=NS)
    return lambda e: bool(xpath(e))


def to_string(elem: etree._Element) -> str:
    return etree.tostring(elem, encoding="unicode")


class StreamClosed(AssertionError):
    """The server closed the stream or the connection while we waited for something."""


class XmppStream:
    """One TCP connection with an incremental parser; restartable after SASL success."""

    def __init__(self, server: ServerInfo, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.header: etree._Element | None = None  # the server's last stream header (attributes only)
        self.features: etree._Element | None = None  # the last <stream:features/> seen
        self.jid: str | None = None  # full JID after bind
        self.inbox: list[etree._Element] = []
        self.received: list[etree._Element] = []  # every top-level element, in order
        self.closed_by_peer = False  # the server sent </stream:stream>
        self.eof = False  # the TCP connection is closed
        self._changed = asyncio.Event()
        self._new_parser()
        self._reader_task = asyncio.get_running_loop().create_task(self._read_loop())

    # --- parsing ---
    def _new_parser(self) -> None:
        self._parser = etree.XMLPullParser(events=("start", "end"), resolve_entities=False, no_network=True)
        self._depth = 0

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                self._feed(data)
        except (ConnectionError, OSError):
            pass
        except etree.XMLSyntaxError:
            pass
        finally:
            self.eof = True
            self._changed.set()

    def _feed(self, data: bytes) -> None:
        self._parser.feed(data)
        for event, elem in self._parser.read_events():
            if event == "start":
                self._depth += 1
                if self._depth == 1:
                    self.header = elem
                    self._changed.set()
            else:
                self._depth -= 1
                if self._depth == 0:
                    self.closed_by_peer = True
                elif self._depth == 1:
                    if elem.tag == q("stream:features"):
                        self.features = elem
                    self.received.append(elem)
                    self.inbox.append(elem)
                    elem.getparent().remove(elem)  # keep memory flat; the element stays valid
        self._changed.set()

    # --- sending and receiving ---
    async def send(self, data: str) -> None:
        self.writer.write(data.encode())
        await self.writer.drain()

    async def _wait_for(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until done() holds; AssertionError after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done():
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"{what} within {timeout}s")
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def expect(self, match: Match = None, timeout: float = 5.0) -> etree._Element:
        """The first element (received or still to come) matching `match`; removes it from the inbox."""
        test = _matcher(match)
        found: list[etree._Element] = []

        def done() -> bool:
            for i, elem in enumerate(self.inbox):
                if test(elem):
                    found.append(self.inbox.pop(i))
                    return True
            if self.eof:
                raise StreamClosed(f"connection closed while waiting for {match!r}; inbox: {self._dump()}")
            return False

        await self._wait_for(done, timeout, f"nothing matching {match!r} (inbox: {self._dump()})")
        return found[0]

    async def wait_header(self, timeout: float = 5.0) -> etree._Element:
        """The server's stream header of the current stream."""

        def done() -> bool:
            if self.header is None and self.eof:
                raise StreamClosed("connection closed before a stream header")
            return self.header is not None

        await self._wait_for(done, timeout, "no stream header")
        assert self.header is not None
        return self.header

    async def wait_features(self, timeout: float = 5.0) -> etree._Element:
        return await self.expect("self::stream:features", timeout)

    async def expect_stream_error(self, condition: str | None = None, timeout: float = 5.0) -> etree._Element:
        """The <stream:error/>; asserts its defined condition if given. Returns the error element."""
        err = await self.expect("self::stream:error", timeout)
        if condition is not None:
            conds = [etree.QName(c).localname for c in err if etree.QName(c).namespace == NS["streams"]]
            assert conds and conds[0] == condition, f"stream error {conds}, wanted {condition}: {to_string(err)}"
        return err

    async def wait_closed(self, timeout: float = 5.0) -> None:
        """Wait until the server closes the TCP connection (raises AssertionError if it does not)."""
        await self._wait_for(lambda: self.eof, timeout, "connection still open")

    async def iq(self, xml: str, timeout: float = 5.0) -> etree._Element:
        """Send an <iq/> (an id is added when it has none) and return the result/error with its id."""
        elem = etree.fromstring(xml)
        iq_id = elem.get("id")
        if iq_id is None:
            iq_id = new_id("iq")
            elem.set("id", iq_id)
        await self.send(to_string(elem))
        return await self.expect(
            lambda e: e.tag == q("c:iq") and e.get("id") == iq_id and e.get("type") in ("result", "error"), timeout,
        )

    async def sync(self, timeout: float = 5.0) -> None:
        """A ping round trip to our own server: what the server sent us before its answer is in the inbox."""
        await self.iq(f"<iq type='get' to='{self.server.domain}'><ping xmlns='{NS['ping']}'/></iq>", timeout)

    async def assert_nothing(self, match: Match = None) -> None:
        """After a round trip to the server, no element matching `match` is waiting in the inbox."""
        await self.sync()
        test = _matcher(match)
        found = [to_string(e) for e in self.inbox if test(e)]
        assert not found, f"unexpected: {found}"

    def drain(self) -> list[etree._Element]:
        """Empty the inbox and return what it held."""
        items, self.inbox = self.inbox, []
        return items

    def _dump(self) -> str:
        return " | ".join(to_string(e)[:300] for e in self.inbox[-10:]) or "(empty)"

    # --- stream set-up ---
    def stream_header(self, to: str | None = None, *, version: str | None = "1.0", lang: str | None = "en",
                      from_: str | None = None, xmlns: str = "jabber:client",
                      stream_ns: str = NS["stream"]) -> str:
        attrs = [f"xmlns='{xmlns}'", f"xmlns:stream='{stream_ns}'"]
        if to is not None:
            attrs.append(f"to='{to}'")
        if from_ is not None:
            attrs.append(f"from='{from_}'")
        if version is not None:
            attrs.append(f"version='{version}'")
        if lang is not None:
            attrs.append(f"xml:lang='{lang}'")
        return f"<?xml version='1.0'?><stream:stream {' '.join(attrs)}>"

    async def open_stream(self, header: str | None = None, **kw: object) -> etree._Element:
        """Send a stream header (ours by default) and return the server's stream features."""
        self.header = None
        self.features = None
        self._new_parser()
        await self.send(header or self.stream_header(self.server.domain, **kw))  # type: ignore[arg-type]
        return await self.wait_features()

    async def auth_plain(self, username: str, password: str) -> etree._Element:
        """SASL PLAIN; returns <success/> or <failure/> (the stream is not restarted)."""
        token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
        await self.send(f"<auth xmlns='{NS['sasl']}' mechanism='PLAIN'>{token}</auth>")
        return await self.expect(lambda e: e.tag in (q("sasl:success"), q("sasl:failure")))

    async def login(self, username: str, password: str) -> etree._Element:
        """PLAIN then the stream restart; returns the post-auth features."""
        result = await self.auth_plain(username, password)
        assert result.tag == q("sasl:success"), f"login {username} failed: {to_string(result)}"
        return await self.open_stream()

    async def bind(self, resource: str | None) -> etree._Element:
        """Resource binding (RFC 6120 §7); None asks the server to generate one. Returns the IQ reply."""
        inner = f"<resource>{resource}</resource>" if resource is not None else ""
        reply = await self.iq(f"<iq type='set'><bind xmlns='{NS['bind']}'>{inner}</bind></iq>")
        if reply.get("type") == "result":
            self.jid = reply.findtext(f"{q('bind:bind')}/{q('bind:jid')}")
        return reply

    async def close(self, timeout: float = 5.0) -> None:
        """Send </stream:stream>, wait briefly for the server to close, then close the socket."""
        if not self.eof:
            try:
                await self.send("</stream:stream>")
                await self.wait_closed(timeout)
            except (ConnectionError, OSError, AssertionError):
                pass
        await self.abort()

    async def abort(self) -> None:
        """Close the socket without a closing handshake."""
        self.writer.close()
        with suppress(ConnectionError, OSError):
            await self.writer.wait_closed()
        self._reader_task.cancel()
        with suppress(asyncio.CancelledError):
            await self._reader_task


async def raw_open(server: ServerInfo, header: str | None = None, *, features: bool = True,
                   **header_kw: object) -> XmppStream:
    """Open TCP and send a stream header (ours to the server's domain, or `header` verbatim).

    With features=True waits for the stream features (use features=False when an error is expected:
    then read `await s.wait_header()` / `await s.expect_stream_error(...)`). The caller closes it.
    """
    reader, writer = await asyncio.open_connection(server.host, server.port)
    stream = XmppStream(server, reader, writer)
    if header is None:
        header_kw.setdefault("to", server.domain)  # to=None: no 'to' at all
        header = stream.stream_header(**header_kw)  # type: ignore[arg-type]
    if features:
        await stream.open_stream(header)
    else:
        await stream.send(header)
    return stream


@asynccontextmanager
async def connect(
    server: ServerInfo, user: str, *, password: str | None = None, resource: str | None = None,
    bind: bool = True, session: bool = False, presence: bool = False, roster: bool = False,
) -> AsyncIterator[XmppStream]:
    """A logged-in stream for `user` (a local part): PLAIN, a bound resource (random when None),
    then optionally the legacy session, a roster get and initial presence. Closes the stream at the end."""
    stream = await raw_open(server)
    try:
        await stream.login(user, password if password is not None else server.password)
        if bind:
            reply = await stream.bind(resource or f"conf-{uuid.uuid4().hex[:8]}")
            assert reply.get("type") == "result", f"bind failed: {to_string(reply)}"
            if session:
                await stream.iq(f"<iq type='set'><session xmlns='{NS['session']}'/></iq>")
            if roster:
                await stream.iq(f"<iq type='get'><query xmlns='{NS['roster']}'/></iq>")
            if presence:
                await stream.send("<presence/>")
        yield stream
    finally:
        await stream.close(timeout=2.0)


async def register_account(server: ServerInfo, username: str | None = None, password: str | None = None) -> str:
    """A new account through XEP-0077 in-band registration (open to loopback on every server)."""
    username = username or f"u{uuid.uuid4().hex[:10]}"
    stream = await raw_open(server)
    try:
        reply = await stream.iq(
            f"<iq type='set' to='{server.domain}'><query xmlns='{NS['register']}'>"
            f"<username>{username}</username><password>{password or server.password}</password></query></iq>"
        )
        assert reply.get("type") == "result", f"registration failed: {to_string(reply)}"
    finally:
        await stream.close(timeout=2.0)
    return username


def stanza_error(elem: etree._Element) -> tuple[str | None, str | None, etree._Element | None]:
    """(type, defined condition, <error/>) of a stanza, or Nones when it is not an error."""
    err = elem.find(q("c:error"))
    if err is None:
        return None, None, None
    conds = [etree.QName(c).localname for c in err if etree.QName(c).namespace == NS["stanzas"]]
    return err.get("type"), (conds[0] if conds else None), err


def assert_stanza_error(elem: etree._Element, type_: str | None, condition: str) -> etree._Element:
    """Assert `elem` is an error stanza (RFC 6120 §8.3) with this condition (and type, unless None).

    Returns the <error/> child."""
    assert elem.get("type") == "error", f"not an error stanza: {to_string(elem)}"
    etype, cond, err = stanza_error(elem)
    assert err is not None, f"error stanza without <error/>: {to_string(elem)}"
    assert cond == condition, f"condition {cond!r}, wanted {condition!r}: {to_string(elem)}"
    if type_ is not None:
        assert etype == type_, f"error type {etype!r}, wanted {type_!r}: {to_string(elem)}"
    return err
