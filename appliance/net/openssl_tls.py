"""Server-side TLS on pyOpenSSL over memory BIOs, for what Python's `ssl` cannot do on the server side:
ask a peer server for any certificate (s2s, net/s2s_tls.py) and staple an OCSP response (c2s and HTTPS).

The policy is net/tls.py's: TLS 1.2 and 1.3 only, the same ECDHE suites, no compression nor renegotiation,
and the same channel bindings (`tls-server-end-point` from the served certificate, `tls-exporter` on
TLS 1.3, which pyOpenSSL can export where Python 3.11's `ssl` cannot).

- `ContextCache`: one `SSL.Context` per served certificate (rebuilt when its file changes), switched by SNI.
- `TlsEngine`: one session over memory BIOs: network bytes in, plaintext out, and back.
- `TlsProtocol`: an asyncio protocol over the accepted socket that is the TLS transport of an inner protocol
  (the c2s stream, aiohttp's request handler), the way `loop.start_tls` makes one with `ssl`.
- `start_tls` (STARTTLS) and `direct_tls` (a direct-TLS listener's protocol factory): TLS on a connection
  with whichever implementation the listener's chooser gives for it (an `ssl.SSLContext`, or an
  `OpenSslServer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from OpenSSL import SSL

from appliance.net.tls import MOZILLA_INTERMEDIATE_CIPHERS, remember_end_point

log = logging.getLogger(__name__)

CHUNK = 65_536
HANDSHAKE_TIMEOUT = 60.0  # asyncio's default for start_tls; direct-TLS listeners give 30

Prepare = Callable[[SSL.Context, x509.Certificate], None]


def make_context(chain: Path, key: Path, alpn: bytes | None = None) -> tuple[SSL.Context, x509.Certificate]:
    """A server context for one certificate with net/tls.py's policy; also its leaf certificate."""
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_cipher_list(MOZILLA_INTERMEDIATE_CIPHERS.encode())
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
    context.use_certificate_chain_file(str(chain))
    context.use_privatekey_file(str(key))
    context.check_privatekey()
    leaf = x509.load_pem_x509_certificates(chain.read_bytes())[0]
    remember_end_point(context, leaf)
    if alpn is not None:
        context.set_alpn_select_callback(
            lambda _conn, offered: alpn if alpn in offered else SSL.NO_OVERLAPPING_PROTOCOLS)
    return context, leaf


class ContextCache:
    """The contexts of the certificates `files_for` names, built on first use and when a file changes;
    `prepare` adds what a listener needs (s2s asks for the peer's certificate, c2s staples)."""

    def __init__(self, files_for: Callable[[str | None], tuple[Path, Path] | None], *, alpn: bytes | None = None,
                 prepare: Prepare | None = None) -> None:
        self._files_for = files_for
        self._alpn = alpn
        self._prepare = prepare
        self._contexts: dict[tuple[Path, Path, int], SSL.Context] = {}

    def context(self, name: str | None) -> SSL.Context:
        files = self._files_for(name)
        if files is None:
            raise ssl.SSLError("no certificate to serve")
        chain, key = files
        cache_key = (chain, key, chain.stat().st_mtime_ns)  # a renewed certificate builds a new context
        context = self._contexts.get(cache_key)
        if context is None:
            context, leaf = make_context(chain, key, self._alpn)
            context.set_tlsext_servername_callback(self._on_sni)
            if self._prepare is not None:
                self._prepare(context, leaf)
            self._contexts = {k: v for k, v in self._contexts.items() if k[:2] != (chain, key)}
            self._contexts[cache_key] = context
        return context

    def connection(self) -> SSL.Connection:
        """A server-side session with the default certificate (SNI may switch it)."""
        conn = SSL.Connection(self.context(None), None)
        conn.set_accept_state()
        return conn

    def _on_sni(self, conn: SSL.Connection) -> None:
        name = conn.get_servername()
        try:
            context = self.context(name.decode() if name else None)
        except Exception:
            log.exception("TLS: choosing a certificate for %r failed; using the default", name)
            return
        if context is not conn.get_context():
            conn.set_context(context)


class TlsEngine:
    """One TLS session over memory BIOs: `feed` what the network brought, `handshake`/`read` it, and send
    `outgoing()` to the network."""

    __slots__ = ("conn",)

    def __init__(self, conn: SSL.Connection) -> None:
        self.conn = conn

    def feed(self, data: bytes) -> None:
        self.conn.bio_write(data)

    def handshake(self) -> bool:
        """One step; whether the handshake is complete. Raises `SSL.Error` when it failed."""
        try:
            self.conn.do_handshake()
        except SSL.WantReadError:
            return False
        return True

    def read(self) -> bytes | None:
        """Plaintext received so far (b"" when nothing is complete yet), None once the peer closed TLS."""
        chunks = []
        while True:
            try:
                chunks.append(self.conn.recv(CHUNK))
            except SSL.WantReadError:
                return b"".join(chunks)
            except SSL.ZeroReturnError:
                return None if not chunks else b"".join(chunks)

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self.conn.send(view[:CHUNK].tobytes()):]

    def outgoing(self) -> bytes:
        """Network bytes waiting to be sent (records, alerts, tickets)."""
        chunks = []
        while True:
            try:
                data = self.conn.bio_read(CHUNK)
            except SSL.WantReadError:
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)

    def shutdown(self) -> None:
        with contextlib.suppress(SSL.Error):
            self.conn.shutdown()


class SslObjectView:
    """What `net.tls.channel_bindings` and the web layer read of `ssl_object`, for a pyOpenSSL session."""

    __slots__ = ("_conn",)

    def __init__(self, conn: SSL.Connection) -> None:
        self._conn = conn

    @property
    def context(self) -> SSL.Context:
        return self._conn.get_context()

    def version(self) -> str | None:
        return self._conn.get_protocol_version_name()

    def export_keying_material(self, label: bytes, length: int, context: bytes | None) -> bytes:
        return self._conn.export_keying_material(label, length, context)

    def selected_alpn_protocol(self) -> str | None:
        chosen = self._conn.get_alpn_proto_negotiated()
        return chosen.decode() if chosen else None


class TlsProtocol(asyncio.Protocol):
    """The accepted socket's protocol during and after a pyOpenSSL handshake, and the transport of the inner
    (application) protocol once `attach` is called."""

    def __init__(self, conn: SSL.Connection, app: asyncio.BaseProtocol, *, connect: bool,
                 timeout: float = HANDSHAKE_TIMEOUT) -> None:
        """`connect`: call the app's `connection_made` after the handshake (direct TLS), else the app already
        runs on the connection and awaits `handshake()` (STARTTLS)."""
        loop = asyncio.get_running_loop()
        self._engine = TlsEngine(conn)
        self._app = app
        self._connect = connect
        self._timeout = timeout
        self._raw: asyncio.Transport | None = None
        self._handshake: asyncio.Future[None] = loop.create_future()
        self._handshake.add_done_callback(_retrieve)  # nobody awaits a direct-TLS handshake
        self._timer: asyncio.TimerHandle | None = None
        self._attached = False  # the app knows us as its transport: data may go to it
        self._reading = True  # the app wants data
        self._closing = False
        self._app_lost = False

    # -- the socket's side -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._raw = transport  # type: ignore[assignment]
        self._timer = asyncio.get_running_loop().call_later(self._timeout, self._fail, TimeoutError(
            f"TLS handshake took longer than {self._timeout:g} s"))

    def data_received(self, data: bytes) -> None:
        self._engine.feed(data)
        if self._handshake.done():
            self._deliver()
            return
        try:
            done = self._engine.handshake()
        except SSL.Error as exc:
            self._flush()  # the alert
            self._fail(ssl.SSLError(f"TLS handshake failed: {exc}"))
            return
        self._flush()
        if not done:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._handshake.set_result(None)
        if self._connect:
            self._app.connection_made(self)
            self.attach()

    def _fail(self, exc: Exception) -> None:
        if not self._handshake.done():
            self._handshake.set_exception(exc)
            log.debug("%s", exc)
            if self._raw is not None:
                self._raw.abort()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self._handshake.done():
            self._handshake.set_exception(ConnectionResetError("the peer closed the connection during the handshake"))
        # After STARTTLS the app was connected all along: it hears of the loss even during the handshake.
        if (self._attached or not self._connect) and not self._app_lost:
            self._app_lost = True
            self._app.connection_lost(exc)
        self._raw = None

    def pause_writing(self) -> None:
        if self._attached:
            self._app.pause_writing()

    def resume_writing(self) -> None:
        if self._attached:
            self._app.resume_writing()

    async def handshake(self) -> None:
        await self._handshake

    def attach(self) -> None:
        """The app was told of this transport: hand it what arrived with the end of the handshake."""
        self._attached = True
        asyncio.get_running_loop().call_soon(self._deliver)

    def _deliver(self) -> None:
        if not self._attached or not self._reading or self._raw is None:
            return
        try:
            data = self._engine.read()
        except SSL.Error as exc:
            log.info("TLS: %s", exc)
            self.abort()
            return
        self._flush()  # TLS 1.3 may have something to say (tickets, key updates)
        if data:
            self._app.data_received(data)  # type: ignore[attr-defined]
        if data is None and not self._app.eof_received():  # type: ignore[attr-defined]
            self.close()

    def _flush(self) -> None:
        out = self._engine.outgoing()
        if out and self._raw is not None and not self._raw.is_closing():
            self._raw.write(out)

    # -- the app's transport -----------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._raw is None or self._raw.is_closing():
            return
        try:
            self._engine.send(bytes(data))
        except SSL.Error as exc:
            log.info("TLS: %s", exc)
            self.abort()
            return
        self._flush()

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("TLS has no half-close")

    def is_closing(self) -> bool:
        return self._closing or self._raw is None or self._raw.is_closing()

    def close(self) -> None:
        if self._closing or self._raw is None:
            return
        self._closing = True
        self._engine.shutdown()  # close_notify
        self._flush()
        self._raw.close()

    def abort(self) -> None:
        self._closing = True
        if self._raw is not None:
            self._raw.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        conn = self._engine.conn
        if name == "ssl_object":
            return SslObjectView(conn)
        if name == "sslcontext":
            return conn.get_context()
        if name == "cipher":
            return conn.get_cipher_name(), conn.get_protocol_version_name(), conn.get_cipher_bits()
        if name == "peercert":
            return None
        return self._raw.get_extra_info(name, default) if self._raw is not None else default

    def pause_reading(self) -> None:
        self._reading = False
        if self._raw is not None and self._raw.is_reading():
            self._raw.pause_reading()

    def resume_reading(self) -> None:
        self._reading = True
        if self._raw is not None and not self._raw.is_reading():
            self._raw.resume_reading()
        asyncio.get_running_loop().call_soon(self._deliver)  # what arrived while the app was paused

    def is_reading(self) -> bool:
        return self._reading

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._app = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._app

    def get_write_buffer_size(self) -> int:
        return self._raw.get_write_buffer_size() if self._raw is not None else 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._raw.get_write_buffer_limits() if self._raw is not None else (0, 0)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if self._raw is not None:
            self._raw.set_write_buffer_limits(high, low)


class OpenSslServer:
    """TLS with pyOpenSSL for a listener: the contexts it serves."""

    def __init__(self, contexts: ContextCache) -> None:
        self.contexts = contexts

    async def start_tls(self, transport: asyncio.Transport, app: asyncio.BaseProtocol) -> TlsProtocol:
        """STARTTLS: take `transport` over from the running `app` and complete the handshake."""
        tls = TlsProtocol(self.contexts.connection(), app, connect=False)
        transport.set_protocol(tls)
        tls.connection_made(transport)
        if not transport.is_reading():
            transport.resume_reading()
        try:
            await tls.handshake()
        except BaseException:
            transport.abort()
            raise
        tls.attach()
        return tls


Tls = ssl.SSLContext | OpenSslServer


async def start_tls(transport: asyncio.Transport, app: asyncio.BaseProtocol, tls: Tls) -> asyncio.Transport:
    """STARTTLS for the running `app` with either implementation (`ssl`'s is the loop's own start_tls)."""
    if isinstance(tls, OpenSslServer):
        return await tls.start_tls(transport, app)  # type: ignore[return-value]
    started = await asyncio.get_running_loop().start_tls(transport, app, tls, server_side=True)
    if started is None:
        raise ConnectionError("TLS handshake failed")
    return started


def direct_tls(inner: asyncio.BaseProtocol, tls: Tls | None, *, timeout: float) -> asyncio.BaseProtocol:
    """The protocol for a connection a direct-TLS listener accepts: the TLS layer of the chosen implementation
    over the app protocol `inner`, which it connects after the handshake. For `ssl` it is the event loop's
    own SSL protocol, exactly what `create_server(ssl=...)` makes, so that path stays as fast."""
    loop = asyncio.get_running_loop()
    if tls is None:
        return _Refuse()
    if isinstance(tls, OpenSslServer):
        return TlsProtocol(tls.contexts.connection(), inner, connect=True, timeout=timeout)
    waiter = loop.create_future()
    waiter.add_done_callback(_retrieve)
    return _ssl_protocol(loop)(loop, inner, tls, waiter, server_side=True, server_hostname=None,  # type: ignore[no-any-return]
                               ssl_handshake_timeout=timeout)


def _ssl_protocol(loop: asyncio.AbstractEventLoop) -> type:
    """The SSL protocol class of the running loop: uvloop's own (its transports have a fast path for it),
    else asyncio's."""
    if type(loop).__module__.startswith("uvloop"):
        from uvloop.loop import SSLProtocol

        return SSLProtocol  # type: ignore[no-any-return]
    return asyncio.sslproto.SSLProtocol


class _Refuse(asyncio.Protocol):
    """No certificate to serve (yet): the connection is closed at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()  # type: ignore[attr-defined]


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


__all__ = ["ContextCache", "OpenSslServer", "SslObjectView", "Tls", "TlsEngine", "TlsProtocol", "direct_tls",
           "make_context", "start_tls"]
