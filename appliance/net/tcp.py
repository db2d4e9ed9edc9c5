"""XMPP over TCP: the asyncio protocol that feeds the stream parser and carries a client session."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from appliance.core.c2s.shaping import InputShaping
from appliance.net.addresses import peer_is_loopback
from appliance.net.openssl_tls import Tls, start_tls
from appliance.util.fdlimit import DescriptorWatch
from appliance.xmpp.errors import StreamError
from appliance.xmpp.parser import StreamParser
from appliance.xmpp.stream import STREAM_CLOSE, stream_header

if TYPE_CHECKING:
    from appliance.core.c2s import C2SServices, ClientSession

log = logging.getLogger(__name__)

READ_LIMIT = 65_536
LINGER = 2.0  # seconds a connection closed with input unread keeps reading (and dropping) it


def reset(transport: asyncio.BaseTransport) -> None:
    """Cut a connection off at once, dropping what the kernel still holds for it (a TCP reset).

    A plain close would leave unsent data with the kernel, which keeps trying to deliver it to a client
    that reads nothing for many minutes."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()  # type: ignore[attr-defined]


class ConnectionLimits:
    """Counts open connections per IP and in total; `descriptors` hears of every accepted socket."""

    __slots__ = ("by_ip", "descriptors", "max_per_ip", "max_total", "total")

    def __init__(self, *, max_per_ip: int, max_total: int, descriptors: DescriptorWatch | None = None) -> None:
        self.max_per_ip = max_per_ip
        self.max_total = max_total
        self.descriptors = descriptors
        self.by_ip: dict[str, int] = {}
        self.total = 0

    def acquire(self, ip: str) -> bool:
        if self.total >= self.max_total or self.by_ip.get(ip, 0) >= self.max_per_ip:
            return False
        self.by_ip[ip] = self.by_ip.get(ip, 0) + 1
        self.total += 1
        return True

    def release(self, ip: str) -> None:
        left = self.by_ip.get(ip, 0) - 1
        if left <= 0:
            self.by_ip.pop(ip, None)
        else:
            self.by_ip[ip] = left
        self.total -= 1


class _ReadOutput:
    """What the connections write while one of them handles a read (the routing it causes, carried out
    inline) leaves when that read is done, one send per connection: no callback per write, and no
    extra event-loop turn before the output goes."""

    __slots__ = ("reading", "written")

    def __init__(self) -> None:
        self.reading = False
        self.written: list[XmppTcpProtocol] = []

    def send(self) -> None:
        self.reading = False
        written, self.written = self.written, []
        for protocol in written:
            try:
                protocol.flush()
            except Exception:  # one broken connection must not keep the others' output back
                log.exception("writing to %s failed", protocol.peer_ip)


# One for the process: the server runs its connections on one event loop in one thread, and a read's
# handling never starts another read.
_READ_OUTPUT = _ReadOutput()


class XmppTcpProtocol(asyncio.Protocol):
    """One TCP (or direct TLS) client connection; implements the session's Transport interface."""

    __slots__ = (
        "_counted",
        "_limits",
        "_lingering",
        "_loop",
        "_paused",
        "_pending",
        "_pending_size",
        "_shaping",
        "_throttled",
        "_tls_context",
        "_transport",
        "channel_bindings",
        "loopback",
        "parser",
        "peer_ip",
        "secure",
        "services",
        "session",
    )

    def __init__(
        self,
        services: C2SServices,
        limits: ConnectionLimits,
        tls_context: Callable[[], Tls | None],
        *,
        direct_tls: bool,
        session_factory: Callable[[C2SServices, XmppTcpProtocol], ClientSession],
    ) -> None:
        self.services = services
        self._limits = limits
        self._tls_context = tls_context
        self.secure = direct_tls
        self.loopback = False
        self.peer_ip = "?"
        self.channel_bindings: dict[str, bytes] = {}
        limits_cfg = services.config.limits
        self.parser = StreamParser(max_stanza_size=limits_cfg.max_stanza_size, max_depth=limits_cfg.max_depth)
        self._transport: asyncio.Transport | None = None
        # Kept from connection_made: write() schedules a flush per stanza, and on Python 3.11 every
        # asyncio.get_running_loop() is a getpid() system call.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._paused = False  # by the session: its intake is backed up
        self._lingering: asyncio.TimerHandle | None = None  # closing: what ends it (see close)
        self._throttled: asyncio.TimerHandle | None = None  # by the shaper: the client sends too fast
        self._shaping = InputShaping(limits_cfg, time.monotonic())
        self._pending: list[bytes] | None = None
        self._pending_size = 0  # bytes in _pending: buffered() is asked once per stanza sent
        self._counted = False
        self.session = session_factory(services, self)

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport
        self._loop = asyncio.get_running_loop()
        peer = transport.get_extra_info("peername")
        self.peer_ip = peer[0] if peer else "?"
        self.loopback = peer_is_loopback(self.peer_ip)
        if self.secure:
            self._update_bindings()
        sock = transport.get_extra_info("socket")
        if self._limits.descriptors is not None and sock is not None:
            self._limits.descriptors.accepted(sock.fileno(), self._limits.total + 1)
        if not self._limits.acquire(self.peer_ip):
            log.warning("refusing a connection from %s: connection limit reached", self.peer_ip)
            self.session.stream_error(StreamError.policy_violation("Too many connections"))
            return
        self._counted = True

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None:
            return
        # The session carries out what the input asks at once (ClientSession.wake) and may close the
        # stream meanwhile: reading must already be held (bad input, a client too fast) for that close to
        # linger over the unread input instead of resetting the connection (see close).
        output = _READ_OUTPUT
        output.reading = True
        try:
            try:
                new_events = self.parser.feed(data)
            except StreamError as err:
                self.pause()
                done = self.parser.take_events()
                if done:
                    self.session.receive(done)
                self.session.receive_error(err)
                return
            wait = self._shaping.charge(self.session, len(data), len(new_events), time.monotonic())
            if wait > 0 and self._transport is not None and self._throttled is None:
                self._throttled = self._loop.call_later(wait, self._unthrottle)  # type: ignore[union-attr]
                self._update_reading()
            if new_events:
                self.session.receive(new_events)
            else:
                self.session.touch()
        finally:
            output.send()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        # A closing timer stays: TLS reports the loss before its socket is closed (which would take
        # up to 30 s when the client reads nothing); aborting an already closed transport does nothing.
        if self._throttled is not None:
            self._throttled.cancel()
            self._throttled = None
        if self._counted:
            self._counted = False
            self._limits.release(self.peer_ip)
        self._transport = None
        self.session.connection_lost()

    # -- Transport interface for the session ----------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue bytes; everything written during one event-loop turn goes out in one send."""
        if self._transport is None or self._transport.is_closing():
            return
        if self._pending is None:
            self._pending = [data]
            self._pending_size = len(data)
            if _READ_OUTPUT.reading:
                _READ_OUTPUT.written.append(self)
            else:
                self._loop.call_soon(self.flush)  # type: ignore[union-attr]  # set with the transport
        else:
            self._pending.append(data)
            self._pending_size += len(data)

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        self._pending_size = 0
        if pending and self._transport is not None and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def open_stream(self, from_: str, stream_id: str, to: str | None = None, version: str | None = "1.0") -> None:
        self.write(stream_header(from_=from_, stream_id=stream_id, to=to, version=version))

    def close_stream(self) -> None:
        self.write(STREAM_CLOSE)

    def write_stream_error(self, error: StreamError) -> None:
        self.write(error.to_bytes())

    def buffered(self) -> int:
        return self._pending_size + (self._transport.get_write_buffer_size() if self._transport is not None else 0)

    def can_start_tls(self) -> bool:
        return not self.secure and self._tls_context() is not None

    async def start_tls(self) -> None:
        context = self._tls_context()
        if context is None or self._transport is None:
            raise StreamError.undefined_condition("TLS is not available")
        self.flush()  # <proceed/> must leave before the handshake starts
        try:
            # ssl's start_tls, or pyOpenSSL while an OCSP response is stapled (net/openssl_tls.py)
            new_transport = await start_tls(self._transport, self, context)
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            log.info("TLS handshake with %s failed: %s", self.peer_ip, exc)
            if self._transport is not None:
                self._transport.abort()
            raise StreamError.undefined_condition("TLS handshake failed") from None
        if new_transport is None:
            raise StreamError.undefined_condition("TLS handshake failed")
        self._transport = new_transport  # type: ignore[assignment]
        self.secure = True
        self._update_bindings()

    def _update_bindings(self) -> None:
        from appliance.net.tls import channel_bindings

        ssl_object = self._transport.get_extra_info("ssl_object") if self._transport else None
        self.channel_bindings = channel_bindings(ssl_object) if ssl_object is not None else {}

    def reset_parser(self) -> None:
        self.parser.reset()

    def hibernate(self) -> None:
        self.parser.hibernate()

    def pause(self) -> None:
        self._paused = True
        self._update_reading()

    def resume(self) -> None:
        self._paused = False
        self._update_reading()

    def _end_linger(self) -> None:
        transport = self._transport
        if transport is not None:
            transport.close()
            self._lingering = asyncio.get_running_loop().call_later(LINGER, reset, transport)

    def _unthrottle(self) -> None:
        self._throttled = None
        self._update_reading()

    def _update_reading(self) -> None:
        """Read while neither the session (backed up) nor the shaper (too fast) holds the reader."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        hold = self._paused or self._throttled is not None
        if hold and transport.is_reading():
            transport.pause_reading()
        elif not hold and not transport.is_reading():
            transport.resume_reading()

    def close(self) -> None:
        self.flush()
        transport = self._transport
        if transport is None or transport.is_closing() or self._lingering is not None:
            return
        loop = asyncio.get_running_loop()
        if not (self._paused or self._throttled):
            transport.close()
            # A client that reads nothing would keep what is still buffered for it, and the
            # connection, forever: past LINGER it is cut off.
            self._lingering = loop.call_later(LINGER, reset, transport)
            return
        # Input is waiting unread (we stopped reading a client that sent too much or bad XML): closing
        # now would reset the connection, and the client might never read our stream error. Send our
        # end, then read and drop its input until it closes too, for LINGER seconds at most.
        self._lingering = loop.call_later(LINGER, self._end_linger)
        if transport.can_write_eof():
            transport.write_eof()
        if self._throttled is not None:
            self._throttled.cancel()
            self._throttled = None
        self._paused = False
        self._update_reading()
