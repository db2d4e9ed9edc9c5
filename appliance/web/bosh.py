"""XMPP over BOSH (XEP-0124, XEP-0206) at /http-bind: a normal client session behind long polling.

The client POSTs `<body/>` wrappers numbered by `rid`; the server holds up to `hold` of them and
answers the oldest as soon as it has something to say (or after `wait` seconds with an empty body).
`BoshSession` is the core.c2s.Transport: whatever the ClientSession writes is buffered until a held
request can carry it. Requests are processed strictly in rid order; a request whose rid was already
answered gets the same answer again (the client lost it). Limits: `wait` and `hold` are capped by
configuration, the body size by twice limits.max_stanza_size, and a session without any request for
http.bosh_inactivity seconds is closed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from aiohttp import web
from lxml import etree

from appliance.config.model import Config
from appliance.core.c2s import C2SServices, ClientSession
from appliance.core.c2s.shaping import InputShaping
from appliance.net.tcp import ConnectionLimits
from appliance.web.keys import BOSH_SESSIONS, CONFIG
from appliance.web.peer import HttpPeer, cors_headers, http_peer, origin_allowed
from appliance.xmpp.errors import StreamError
from appliance.xmpp.ns import NS_BOSH, NS_CLIENT, NS_STREAM, NS_XBOSH, NS_XML
from appliance.xmpp.parser import Event, Stanza, StreamClose, StreamOpen, StreamParser

log = logging.getLogger(__name__)

PATH = "/http-bind"
BOSH_VERSION = "1.11"
POLLING = 2  # seconds a polling client (hold=0) should leave between empty requests; advisory
MAX_RID = 2**53 - 1
BODY = f"{{{NS_BOSH}}}body"
RESTART = f"{{{NS_XBOSH}}}restart"
XMPP_VERSION = f"{{{NS_XBOSH}}}version"
XML_LANG = f"{{{NS_XML}}}lang"
_SYNTHETIC_HEADER = f"<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}'>".encode()


class BoshError(Exception):
    """A terminal binding condition (XEP-0124 §17): answered with type='terminate', the session ends."""

    def __init__(self, condition: str, text: str = "", stream_error: StreamError | None = None) -> None:
        super().__init__(f"{condition}: {text}" if text else condition)
        self.condition = condition
        self.text = text
        self.stream_error = stream_error  # bad XML: said inside the answer (XEP-0206 §8)


# -- wire format ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BoshBody:
    """One request `<body/>`: its attributes (Clark-notation keys) and payload elements."""

    attrs: dict[str, str]
    payloads: list[etree._Element]

    def rid(self) -> int:
        text = self.attrs.get("rid", "")
        if not text.isdigit() or not 0 < int(text) <= MAX_RID:
            raise BoshError("bad-request", "Every body needs a 'rid' from 1 to 2^53-1")
        return int(text)

    def number(self, name: str, default: int, lo: int, hi: int) -> int:
        """An integer attribute clamped to [lo, hi]; absent means `default`."""
        text = self.attrs.get(name)
        if text is None:
            return default
        if not text.isdigit():
            raise BoshError("bad-request", f"'{name}' must be a whole number")
        return max(lo, min(hi, int(text)))


def parse_body(data: bytes, *, max_size: int, max_depth: int) -> BoshBody:
    """Parse a request with the stream parser's restrictions (no DTDs, entities, comments)."""
    data = data.lstrip()
    if data.startswith(b"<?xml"):
        end = data.find(b"?>")
        data = data[end + 2 :] if end > 0 else data
    if data.startswith((b"<!", b"<?")):  # a DTD, comment or PI before the root: parsed as content otherwise
        error = StreamError.restricted_xml("DTDs, comments and processing instructions are not allowed")
        raise BoshError("remote-stream-error", error.text or "", error)
    parser = StreamParser(max_stanza_size=max_size, max_depth=max_depth + 1)
    parser.feed(_SYNTHETIC_HEADER)
    try:
        events = parser.feed(data)
    except StreamError as err:
        raise BoshError("remote-stream-error", err.text or err.condition, err) from None
    if len(events) != 1 or not isinstance(events[0], Stanza) or not parser.can_hibernate:
        raise BoshError("bad-request", "The request must be one complete <body/> element")
    body = events[0].element
    if body.tag != BODY:
        raise BoshError("bad-request", f"Expected <body xmlns='{NS_BOSH}'/>")
    payloads = []
    for child in list(body):
        body.remove(child)
        child.tail = None
        payloads.append(_in_client_namespace(child))
    return BoshBody(dict(body.attrib), payloads)


def _in_client_namespace(element: etree._Element) -> etree._Element:
    """Payloads written without their own xmlns inherit the BOSH namespace; they mean jabber:client."""
    if not element.tag.startswith(f"{{{NS_BOSH}}}"):
        return element
    moved = etree.Element(f"{{{NS_CLIENT}}}{etree.QName(element).localname}", dict(element.attrib),
                          nsmap={None: NS_CLIENT})
    moved.text = element.text
    for child in list(element):
        for node in child.iter():
            if isinstance(node.tag, str) and node.tag.startswith(f"{{{NS_BOSH}}}"):
                node.tag = f"{{{NS_CLIENT}}}{etree.QName(node).localname}"
        moved.append(child)
    return moved


def render_body(attrs: dict[str, str], payload: bytes = b"") -> bytes:
    """A response `<body/>` declaring the namespaces its payloads may use (stream:, xmpp:)."""
    head = f"<body xmlns='{NS_BOSH}' xmlns:xmpp='{NS_XBOSH}' xmlns:stream='{NS_STREAM}'"
    head += "".join(f" {name}={quoteattr(value)}" for name, value in attrs.items())
    if not payload:
        return (head + "/>").encode()
    return (head + ">").encode() + payload + b"</body>"


# -- one session --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Held:
    """A request waiting for something to carry back."""

    rid: int
    answer: asyncio.Future[bytes]


class BoshSession:
    """One BOSH session: the core.c2s.Transport of its ClientSession, and the rid/hold bookkeeping."""

    def __init__(
        self, registry: BoshSessions, services: C2SServices, peer: HttpPeer, *, secure: bool, first_rid: int,
        wait: int, hold: int, to: str, lang: str,
    ) -> None:
        self.registry = registry
        self.sid = secrets.token_urlsafe(18)
        self.peer_ip = peer.ip
        self.loopback = peer.loopback
        self.secure = secure
        self.channel_bindings: dict[str, bytes] = dict(peer.channel_bindings) if secure and peer.https else {}
        self.wait = wait
        self.hold = hold
        self.requests = hold + 1
        self.inactivity = registry.config.http.bosh_inactivity
        self._to = to
        self._lang = lang
        self._first_rid = first_rid
        self._next_rid = first_rid
        self._out: list[bytes] = []
        self._out_size = 0
        self._held: deque[_Held] = deque()
        self._answered: OrderedDict[int, bytes] = OrderedDict()  # rid -> response, for retransmission
        self._rid_turns: dict[int, asyncio.Future[None]] = {}
        self._active = 0  # requests being handled (held or waiting for their turn)
        self._stream_from = ""
        self._stream_id = ""
        self._awaiting_restart = False
        self._terminating = False  # the stream is closed; the next answer says type='terminate'
        self._condition: str | None = None
        self._finished = False  # the terminate answer went out; the sid is forgotten
        self._flush_scheduled = False
        self._inactivity_timer: asyncio.TimerHandle | None = None
        self._shaping = InputShaping(services.config.limits, time.monotonic())
        self.session = ClientSession(services, self)

    # -- requests -------------------------------------------------------------------------------

    async def handle(self, rid: int, body: BoshBody, size: int = 0) -> bytes:
        """Process one request (`size` bytes) in rid order and return the response it carries."""
        self._active += 1
        if self._inactivity_timer is not None:
            self._inactivity_timer.cancel()
            self._inactivity_timer = None
        try:
            return await self._handle(rid, body, size)
        finally:
            self._active -= 1
            if self._active == 0 and not self._finished:
                loop = asyncio.get_running_loop()
                self._inactivity_timer = loop.call_later(self.inactivity, self._inactive)

    async def _handle(self, rid: int, body: BoshBody, size: int) -> bytes:
        answered = self._answered.get(rid)
        if answered is not None:
            return answered  # the client lost our answer and asks again
        if self._finished or not self._next_rid <= rid < self._next_rid + self.requests:
            raise BoshError("item-not-found", "Unexpected 'rid'")
        if rid != self._next_rid:
            await self._wait_turn(rid)
        self._next_rid = rid + 1
        turn = self._rid_turns.get(self._next_rid)
        if turn is not None and not turn.done():
            turn.set_result(None)
        if self._terminating:
            return self._answer_final(rid)
        events = self._events(rid, body)
        if events:
            self.session.receive(events)  # carried out at once: the stream may end right here
            if self._terminating:
                return self._answer_final(rid)
        # A client sending too fast has its request answered later: with at most `requests` of them
        # open, that paces it as pausing the reader paces a TCP client.
        wait = self._shaping.charge(self.session, size, len(body.payloads), time.monotonic())
        if wait > 0:
            await asyncio.sleep(wait)
        return await self._hold_request(rid)

    async def _wait_turn(self, rid: int) -> None:
        turn = self._rid_turns[rid] = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(self.wait):
                await turn
        except TimeoutError:
            raise BoshError("item-not-found", "An earlier request never arrived") from None
        finally:
            self._rid_turns.pop(rid, None)
        if self._finished:
            raise BoshError("item-not-found", "The session has ended")

    def _events(self, rid: int, body: BoshBody) -> list[Event]:
        if rid == self._first_rid:
            return [self._stream_open(body)]
        if body.attrs.get("type") == "terminate":
            return [*(Stanza(p) for p in body.payloads), StreamClose()]
        if body.attrs.get(RESTART) == "true":
            if not self._awaiting_restart:
                raise BoshError("bad-request", "xmpp:restart is only allowed after authentication")
            self._awaiting_restart = False
            return [self._stream_open(body)]
        if self._awaiting_restart and body.payloads:
            raise BoshError("bad-request", "Restart the stream (xmpp:restart='true') after authentication")
        return [Stanza(p) for p in body.payloads]

    def _stream_open(self, body: BoshBody) -> StreamOpen:
        self._to = body.attrs.get("to", self._to)
        attrs = {"to": self._to, "version": body.attrs.get(XMPP_VERSION, "1.0"), XML_LANG: self._lang}
        return StreamOpen(f"{{{NS_STREAM}}}stream", attrs, {None: NS_CLIENT})

    async def _hold_request(self, rid: int) -> bytes:
        held = _Held(rid, asyncio.get_running_loop().create_future())
        self._held.append(held)
        while len(self._held) > self.hold:
            self._answer(self._held.popleft())
        if self._out:
            self._flush()
        try:
            async with asyncio.timeout(self.wait):
                return await asyncio.shield(held.answer)
        except TimeoutError:
            if held in self._held:
                self._held.remove(held)
                self._answer(held)
            return held.answer.result()

    # -- answers --------------------------------------------------------------------------------

    def _answer(self, held: _Held) -> None:
        """Answer one held request with everything buffered (possibly nothing)."""
        payload = b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        attrs = self._creation_attrs() if held.rid == self._first_rid else {}
        self._deliver(held, render_body(attrs, payload))

    def _answer_final(self, rid: int) -> bytes:
        payload = b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        attrs = self._creation_attrs() if rid == self._first_rid else {}
        attrs["type"] = "terminate"
        if self._condition:
            attrs["condition"] = self._condition
        data = render_body(attrs, payload)
        self._remember(rid, data)
        self._finish()
        return data

    def _deliver(self, held: _Held, data: bytes) -> None:
        self._remember(held.rid, data)
        if not held.answer.done():
            held.answer.set_result(data)

    def _remember(self, rid: int, data: bytes) -> None:
        self._answered[rid] = data
        while len(self._answered) > self.requests:
            self._answered.popitem(last=False)

    def _creation_attrs(self) -> dict[str, str]:
        return {
            "sid": self.sid,
            "wait": str(self.wait),
            "hold": str(self.hold),
            "requests": str(self.requests),
            "inactivity": str(int(self.inactivity)),
            "polling": str(POLLING),
            "ver": BOSH_VERSION,
            "from": self._stream_from,
            "authid": self._stream_id,
            "xmpp:version": "1.0",
            "xmpp:restartlogic": "true",
        }

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._terminating:
            return
        if self._out and self._held:
            self._answer(self._held.popleft())

    def _inactive(self) -> None:
        self._inactivity_timer = None
        if self._active or self._finished:
            return
        if not self._terminating:
            log.info("session %s: BOSH session %s inactive for %d s; closing", self.session.id, self.sid,
                     int(self.inactivity))
            # Like a dropped TCP connection: a resumable session (XEP-0198) waits to be resumed.
            self._terminating = True
            self.session.connection_lost()
        self._finish()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._inactivity_timer is not None:
            self._inactivity_timer.cancel()
            self._inactivity_timer = None
        for turn in self._rid_turns.values():
            if not turn.done():
                turn.set_result(None)
        self.registry.remove(self)

    def shutdown(self) -> None:
        """The server stops: a stream error, then type='terminate' on whatever is held."""
        self.session.stream_error(StreamError.system_shutdown("The server is shutting down"))
        self.close()
        self._finish()

    def fail(self, error: BoshError) -> None:
        """A terminal binding error in a request: end the session without waiting for anything."""
        log.info("session %s: BOSH session %s terminated: %s", self.session.id, self.sid, error)
        self._condition = error.condition
        self.session.close()  # closes the stream; held requests get type='terminate'
        self._finish()

    # -- Transport interface --------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._terminating:
            return
        self._out.append(data)
        self._out_size += len(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)  # one answer for a burst of writes

    def open_stream(self, from_: str, stream_id: str, to: str | None = None, version: str | None = "1.0") -> None:
        # RFC 7395 <open/> and XEP-0206 sessions always say version 1.0; 'to' is not echoed there
        self._stream_from = from_
        self._stream_id = stream_id

    def close_stream(self) -> None:
        """The XML stream ends; the next answer carries type='terminate' (see close)."""

    def write_stream_error(self, error: StreamError) -> None:
        self.write(error.to_bytes())
        # XEP-0124 §17.2 has its own condition for a shutdown (the stream error stays in the body);
        # every other stream error is wrapped as remote-stream-error (XEP-0206 §8).
        shutdown = error.condition == "system-shutdown"
        self._condition = "system-shutdown" if shutdown else "remote-stream-error"

    def buffered(self) -> int:
        return self._out_size

    async def start_tls(self) -> None:
        raise StreamError.undefined_condition("STARTTLS is not available over BOSH; use https://")

    def can_start_tls(self) -> bool:
        return False

    def reset_parser(self) -> None:
        self._awaiting_restart = True

    def pause(self) -> None:
        """BOSH has no reader to pause: each request already waits for the session's answer."""

    def resume(self) -> None:
        """See `pause`."""

    def close(self) -> None:
        """The session is over: answer held requests with type='terminate', or the next request."""
        if self._terminating:
            return
        self._terminating = True
        if self._held:
            first = self._held.popleft()
            self._deliver(first, self._answer_final(first.rid))
            while self._held:
                held = self._held.popleft()
                self._deliver(held, render_body({"type": "terminate"}))
        elif self._active == 0:
            # Nobody is listening now: keep the sid so the next request learns how it ended.
            loop = asyncio.get_running_loop()
            if self._inactivity_timer is None:
                self._inactivity_timer = loop.call_later(self.inactivity, self._inactive)


# -- all sessions -------------------------------------------------------------------------------------


class BoshSessions:
    """The live BOSH sessions by sid; creates them within the connection limits."""

    def __init__(self, config: Config, services: C2SServices, limits: ConnectionLimits) -> None:
        self.config = config
        self.services = services
        self.limits = limits
        self._by_sid: dict[str, BoshSession] = {}

    def __len__(self) -> int:
        return len(self._by_sid)

    def get(self, sid: str) -> BoshSession | None:
        return self._by_sid.get(sid)

    def create(self, peer: HttpPeer, body: BoshBody, rid: int) -> BoshSession:
        http = self.config.http
        if not self.limits.acquire(peer.ip):
            log.warning("refusing a BOSH session from %s: connection limit reached", peer.ip)
            raise BoshError("policy-violation", "Too many connections")
        session = BoshSession(
            self, self.services, peer,
            secure=peer.secure(consider_plain_secure=http.consider_bosh_secure),
            first_rid=rid,
            wait=body.number("wait", int(http.bosh_max_wait), 1, int(http.bosh_max_wait)),
            hold=body.number("hold", 1, 0, http.bosh_max_hold),
            to=body.attrs.get("to", ""),
            lang=body.attrs.get(XML_LANG, "en"),
        )
        self._by_sid[session.sid] = session
        return session

    def remove(self, session: BoshSession) -> None:
        if self._by_sid.pop(session.sid, None) is not None:
            self.limits.release(session.peer_ip)

    def close_all(self) -> None:
        """At shutdown: end every session so no request stays held."""
        for session in list(self._by_sid.values()):
            session.shutdown()


# -- HTTP -------------------------------------------------------------------------------------------


async def _read_limited(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    data = await request.content.read(limit + 1)
    if len(data) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(data))
    return data


async def handle_bosh(request: web.Request) -> web.StreamResponse:
    """/http-bind: POST carries BOSH bodies; OPTIONS answers CORS preflights; GET says what this is."""
    config = request.app[CONFIG]
    headers = cors_headers(request, config.http.allowed_origins)
    if request.method == "OPTIONS":
        return web.Response(headers=headers)
    if request.method != "POST":
        return web.Response(text="XMPP over BOSH (XEP-0206): POST <body/> elements here.\n", headers=headers)
    if not origin_allowed(request, config.http.allowed_origins):
        log.warning("refusing BOSH from origin %s: not in http.allowed_origins",
                    request.headers.get("Origin"))
        raise web.HTTPForbidden(text="This web page's origin may not connect (http.allowed_origins)\n")
    data = await _read_limited(request, config.limits.max_stanza_size * 2)
    sessions = request.app[BOSH_SESSIONS]
    bosh: BoshSession | None = None
    try:
        body = parse_body(data, max_size=config.limits.max_stanza_size * 2, max_depth=config.limits.max_depth)
        rid = body.rid()
        sid = body.attrs.get("sid")
        if sid is None:
            bosh = sessions.create(http_peer(request), body, rid)
        else:
            bosh = sessions.get(sid)
            if bosh is None:
                raise BoshError("item-not-found", "Unknown or expired session")
        answer = await bosh.handle(rid, body, len(data))
    except BoshError as err:
        if bosh is not None:
            bosh.fail(err)
        else:
            log.info("BOSH request from %s refused: %s", http_peer(request).ip, err)
        error = err.stream_error.to_bytes() if err.stream_error is not None else b""
        answer = render_body({"type": "terminate", "condition": err.condition}, error)
    headers["Cache-Control"] = "no-store"
    return web.Response(body=answer, content_type="text/xml", charset="utf-8", headers=headers)


def setup(app: web.Application) -> None:
    """Add the BOSH route to the application."""
    app.router.add_route("*", PATH, handle_bosh)


__all__ = [
    "PATH", "BoshBody", "BoshError", "BoshSession", "BoshSessions", "handle_bosh", "parse_body",
    "render_body", "setup",
]
