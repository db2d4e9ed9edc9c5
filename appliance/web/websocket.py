"""XMPP over WebSocket (RFC 7395) at /xmpp-websocket: a normal client session behind a WebSocket.

Each WebSocket text message carries exactly one complete XML element. The stream header and close
are replaced by `<open/>` and `<close/>` in the framing namespace. Incoming messages are parsed by
one StreamParser that is fed a synthetic stream header once (so stanzas without their own xmlns
still land in jabber:client) and then each message; `<open/>`/`<close/>` become the StreamOpen and
StreamClose events the core already understands.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from xml.sax.saxutils import quoteattr

import aiohttp
from aiohttp import WSCloseCode, web

from appliance.core.c2s import C2SServices, ClientSession
from appliance.core.c2s.shaping import InputShaping
from appliance.net.tcp import ConnectionLimits
from appliance.web.keys import CONFIG, CONNECTION_LIMITS, SERVICES, WEBSOCKETS
from appliance.web.peer import HttpPeer, http_peer, origin_allowed
from appliance.xmpp.errors import StreamError
from appliance.xmpp.ns import NS_CLIENT, NS_FRAMING, NS_STREAM
from appliance.xmpp.parser import Event, Stanza, StreamClose, StreamOpen, StreamParser

log = logging.getLogger(__name__)

PATH = "/xmpp-websocket"
CLOSE_TIMEOUT = 5.0  # seconds to finish sending, then to wait for the client's Close frame
SUBPROTOCOL = "xmpp"
OPEN = f"{{{NS_FRAMING}}}open"
CLOSE = f"{{{NS_FRAMING}}}close"
SYNTHETIC_HEADER = f"<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}'>".encode()
_FEATURES = b"<stream:features>"
_FEATURES_DECLARED = f"<stream:features xmlns:stream='{NS_STREAM}'>".encode()
_ERROR = b"<stream:error>"
_ERROR_DECLARED = f"<stream:error xmlns:stream='{NS_STREAM}'>".encode()


class WebSocketTransport:
    """The core.c2s.Transport for one WebSocket: frames in, frames out through a writer task."""

    __slots__ = (
        "_awaiting_open",
        "_closing",
        "_outbox",
        "_outbox_bytes",
        "_readable",
        "_shaping",
        "_wakeup",
        "channel_bindings",
        "close_code",
        "loopback",
        "parser",
        "peer_ip",
        "secure",
        "session",
        "ws",
    )

    def __init__(
        self, ws: web.WebSocketResponse, peer: HttpPeer, services: C2SServices, *, secure: bool
    ) -> None:
        self.ws = ws
        self.peer_ip = peer.ip
        self.loopback = peer.loopback
        self.secure = secure
        self.channel_bindings = dict(peer.channel_bindings) if secure and peer.https else {}
        limits = services.config.limits
        self.parser = StreamParser(max_stanza_size=limits.max_stanza_size, max_depth=limits.max_depth)
        self._awaiting_open = True
        self._closing = False
        self.close_code = WSCloseCode.OK  # the code of our Close frame (RFC 6455 §7.4)
        self._outbox: deque[str] = deque()
        self._outbox_bytes = 0
        self._wakeup = asyncio.Event()
        self._readable = asyncio.Event()  # cleared while the session's intake is backed up
        self._readable.set()
        self._shaping = InputShaping(limits, time.monotonic())
        self.parser.feed(SYNTHETIC_HEADER)
        self.session = ClientSession(services, self)

    # -- input ----------------------------------------------------------------------------------

    async def pace(self, size: int) -> None:
        """After a message of `size` bytes: wait while the client sends too fast or the session is behind.

        The reader loop does not take the next message meanwhile, so aiohttp stops reading the socket
        and the client's own flow control holds the rest."""
        wait = self._shaping.charge(self.session, size, 1, time.monotonic())
        if wait > 0:
            await asyncio.sleep(wait)
        await self._readable.wait()

    def frame_received(self, text: str) -> None:
        """One WebSocket text message from the client."""
        if not text.strip():
            self.session.touch()  # RFC 7395 has no whitespace keepalives, but they are harmless
            return
        try:
            if text.lstrip().startswith(("<!", "<?")):  # a prolog would be parsed as content otherwise
                raise StreamError.restricted_xml("DTDs, comments and processing instructions are not allowed")
            events = self.parser.feed(text.encode("utf-8"))
            if len(events) != 1 or not self.parser.can_hibernate:
                raise StreamError.bad_format("Each WebSocket message must hold one complete XML element")
            event = self._translate(events[0])
        except StreamError as err:
            self.session.receive_error(err)
            return
        self.session.receive([event])

    def _translate(self, event: Event) -> Event:
        if not isinstance(event, Stanza):
            return event  # StreamClose: the client closed the synthetic root
        element = event.element
        if element.tag == OPEN:
            if not self._awaiting_open:
                raise StreamError.bad_format("<open/> is only allowed at the start and after authentication")
            self._awaiting_open = False
            return StreamOpen(element.tag, dict(element.attrib), {None: NS_CLIENT})
        if element.tag == CLOSE:
            return StreamClose()
        if self._awaiting_open:
            raise StreamError.bad_format("Send <open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/> first")
        return event

    # -- Transport interface --------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        # Each write is one complete element; over WebSocket it must declare every prefix it uses.
        if data.startswith(_FEATURES):
            data = _FEATURES_DECLARED + data[len(_FEATURES) :]
        self._send(data.decode("utf-8"))

    def open_stream(self, from_: str, stream_id: str, to: str | None = None, version: str | None = "1.0") -> None:
        # RFC 7395 <open/> and XEP-0206 sessions always say version 1.0; 'to' is not echoed there
        self._send(
            f"<open xmlns='{NS_FRAMING}' from={quoteattr(from_)} id={quoteattr(stream_id)}"
            " version='1.0' xml:lang='en'/>"
        )

    def close_stream(self) -> None:
        self._send(f"<close xmlns='{NS_FRAMING}'/>")

    def write_stream_error(self, error: StreamError) -> None:
        if error.condition == "system-shutdown":  # the endpoint is going away (RFC 6455 §7.4.1)
            self.close_code = WSCloseCode.GOING_AWAY
        data = error.to_bytes()
        if data.startswith(_ERROR):
            data = _ERROR_DECLARED + data[len(_ERROR) :]
        self._send(data.decode("utf-8"))

    def buffered(self) -> int:
        return self._outbox_bytes

    async def start_tls(self) -> None:
        raise StreamError.undefined_condition("STARTTLS is not available over WebSocket; use wss://")

    def can_start_tls(self) -> bool:
        return False

    def reset_parser(self) -> None:
        self.parser.reset()
        self.parser.feed(SYNTHETIC_HEADER)
        self._awaiting_open = True

    def hibernate(self) -> None:
        self.parser.hibernate()

    def pause(self) -> None:
        self._readable.clear()

    def resume(self) -> None:
        self._readable.set()

    def close(self) -> None:
        self._closing = True
        self._wakeup.set()
        self._readable.set()

    # -- output ---------------------------------------------------------------------------------

    def _send(self, frame: str) -> None:
        if self._closing:
            return
        self._outbox.append(frame)
        self._outbox_bytes += len(frame)
        self._wakeup.set()

    async def run_writer(self) -> None:
        """Send queued frames in order until close(), then what is left; the WebSocket stays open (see _run)."""
        ws = self.ws
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._outbox:
                    frame = self._outbox.popleft()
                    self._outbox_bytes -= len(frame)
                    await ws.send_str(frame)
                if self._closing:
                    break
        except (ConnectionError, RuntimeError) as exc:
            log.debug("session %s: WebSocket write failed: %s", self.session.id, exc)
        finally:
            self._outbox.clear()
            self._outbox_bytes = 0


async def handle_websocket(request: web.Request) -> web.StreamResponse:
    """GET /xmpp-websocket: upgrade and run one client session until either side closes."""
    config = request.app[CONFIG]
    if not origin_allowed(request, config.http.allowed_origins):
        log.warning("refusing a WebSocket from origin %s: not in http.allowed_origins",
                    request.headers.get("Origin"))
        raise web.HTTPForbidden(text="This web page's origin may not connect (http.allowed_origins)\n")
    ws = web.WebSocketResponse(
        protocols=(SUBPROTOCOL,), max_msg_size=config.limits.max_stanza_size, autoping=True, heartbeat=None,
        timeout=CLOSE_TIMEOUT,
    )
    ready = ws.can_prepare(request)
    if not ready.ok:
        raise web.HTTPBadRequest(text="XMPP over WebSocket (RFC 7395): open a WebSocket here\n")
    if ready.protocol != SUBPROTOCOL:
        raise web.HTTPBadRequest(text="The WebSocket subprotocol 'xmpp' is required (RFC 7395)\n")
    peer = http_peer(request)
    limits: ConnectionLimits = request.app[CONNECTION_LIMITS]
    if not limits.acquire(peer.ip):
        log.warning("refusing a WebSocket from %s: connection limit reached", peer.ip)
        raise web.HTTPServiceUnavailable(text="Too many connections\n")
    try:
        await ws.prepare(request)
        secure = peer.secure(consider_plain_secure=config.http.consider_websocket_secure)
        transport = WebSocketTransport(ws, peer, request.app[SERVICES], secure=secure)
        await _run(transport, request.app[WEBSOCKETS])
    finally:
        limits.release(peer.ip)
    return ws


async def _run(transport: WebSocketTransport, registry: set[WebSocketTransport]) -> None:
    # transport.session, not a local: stream resumption (XEP-0198) moves the transport to another session.
    ws = transport.ws
    registry.add(transport)
    loop = asyncio.get_running_loop()
    writer = loop.create_task(transport.run_writer(), name=f"ws-writer-{transport.session.id}")
    reader = loop.create_task(_read(transport), name=f"ws-reader-{transport.session.id}")
    try:
        await asyncio.wait((reader, writer), return_when=asyncio.FIRST_COMPLETED)
    finally:
        # The writer ends after the session closed (its <close/> sent): stop reading here, because
        # aiohttp's close() from another task than the reader ends TCP at once, before the client's
        # Close frame, and unread client bytes then turn our FIN into a reset (1006 at the client).
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        registry.discard(transport)
        transport.session.connection_lost()
        transport.close()
        try:
            await asyncio.wait_for(writer, CLOSE_TIMEOUT)
        except (TimeoutError, asyncio.CancelledError):
            writer.cancel()
        if not ws.closed:
            # RFC 6455 §7: our Close frame, then read until the client's Close frame, then end TCP.
            await ws.close(code=transport.close_code)


async def _read(transport: WebSocketTransport) -> None:
    """Feed the client's messages to the session until the client closes the WebSocket."""
    ws = transport.ws
    async for message in ws:
        if message.type is aiohttp.WSMsgType.TEXT:
            transport.frame_received(message.data)
            await transport.pace(len(message.data))
        elif message.type is aiohttp.WSMsgType.BINARY:
            transport.session.receive_error(StreamError.bad_format("RFC 7395 uses text messages only"))
        elif message.type is aiohttp.WSMsgType.ERROR:
            log.debug("session %s: WebSocket error %s", transport.session.id, ws.exception())
            break


def setup(app: web.Application) -> None:
    """Add the WebSocket route to the application."""
    app.router.add_get(PATH, handle_websocket)


__all__ = ["PATH", "WebSocketTransport", "handle_websocket", "setup"]
