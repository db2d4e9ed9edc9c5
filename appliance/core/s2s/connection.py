"""One server-to-server connection: reads bytes into the parser and the `ServerStream`, carries out its effects.

Outgoing, every stanza written stays in `unacked` until the peer confirms it: by Stream Management
(XEP-0198) `<a h/>` when the peer offers it; without it nothing ever confirms, so only the stanzas of the
last `IN_FLIGHT_WINDOW` seconds are kept, to be returned to their senders should the connection break
(the federation decides: resend, resume or bounce).

One connection carries every stanza to a domain, so its costs are per write and per acknowledgement, not
per byte: everything written in one turn of the event loop goes out in one send (one TLS record), and an
acknowledgement is requested every `ACK_EVERY` stanzas or `ACK_DELAY` after the first unrequested one,
one request outstanding at a time (as Prosody's mod_smacks does), not once per stanza.

Each connection runs in its own task with its own timeouts, so a remote server that stalls or sends
garbage ends only its own connection: local sessions never wait on it (writes never await a remote's
reading; a connection whose unsent output grows past a limit is closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from lxml import etree

from appliance.xmpp import effects as fx
from appliance.xmpp import s2s, sm
from appliance.xmpp.content_namespace import client_stanza, server_bytes
from appliance.xmpp.errors import StreamError
from appliance.xmpp.parser import Stanza, StreamParser

if TYPE_CHECKING:
    from appliance.core.s2s.federation import Federation, TlsSession

log = logging.getLogger(__name__)

READ_SIZE = 65_536
MAX_UNSENT = 4 * 1024 * 1024  # bytes queued for a remote that does not read: past this the link is dropped
# Without stream management a broken connection leaves the fate of what was written unknown; what went
# out this recently may still have been in a buffer on either side (TCP notices a dead peer within seconds
# when it has data to send), so it goes back to its senders as possibly undelivered.
IN_FLIGHT_WINDOW = 10.0
# After our `</stream:stream>`: how long the peer has to answer with its own (RFC 6120 §4.4), reading on
CLOSE_GRACE = 10.0
# XEP-0198 on s2s: an <r/> after every stanza doubles the packets both ways; what is not confirmed yet is
# kept all the same (resent or resumed on a broken link), so a few more of them only cost memory.
ACK_EVERY = 32
ACK_DELAY = 0.25


@dataclass(slots=True)
class Sent:
    """A stanza written on an outgoing stream and not confirmed yet."""

    element: etree._Element
    local: str
    seq: int  # its number in the stream management session (0 without stream management)
    at: float  # when it was written (monotonic)


class ServerConnection:
    """A running s2s stream over an asyncio reader/writer pair, in either direction."""

    def __init__(
        self,
        machine: s2s.ServerStream,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        federation: Federation,
        verify_certificate: bool = False,
        peer_ip: str = "?",
    ) -> None:
        self.machine = machine
        self.reader = reader
        self.writer = writer
        self.federation = federation
        self.verify_certificate = verify_certificate  # outgoing: the TLS handshake checks the peer's name
        self.peer_ip = peer_ip
        limits = federation.config
        self.parser = StreamParser(max_stanza_size=limits.max_remote_stanza_size, max_depth=64)
        self.since = time.time()
        self.stanzas_in = 0
        self.last_active = time.monotonic()  # a byte read or a stanza written: idle means neither
        self._closing_until: float | None = None
        self.stanzas_out = 0
        ssl_object = writer.get_extra_info("ssl_object")
        self.direct_tls = ssl_object is not None  # XEP-0368: TLS came before the stream
        self.tls_version: str | None = ssl_object.version() if ssl_object is not None else None
        self.certificate_valid = False
        self.closed = False
        self._checked = False  # incoming: the header's 'from' went through the federation policy
        self.tls_failed = False  # the peer's certificate failed the check (outgoing, verifying)
        self.peer_chain: list[x509.Certificate] = []  # incoming: the certificate chain the peer showed
        self.failure: str | None = None  # why the remote refused us, if it did
        self.ready = asyncio.Event()  # outgoing: set once our local host is authorized (or the stream failed)
        self.finished = asyncio.Event()  # `run` has ended and the federation was told
        # Outgoing: stanzas written, not yet confirmed, oldest first; with stream management the counts.
        self.unacked: deque[Sent] = deque()
        self.sm_id: str | None = None  # the peer's id for resuming this session, once it gave one
        self.sm_sent = 0  # numbers of the last stanza sent and the last one the peer confirmed
        self.sm_acked = 0
        self._ack_requested = False  # an <r/> is out and not answered yet
        self._requested_upto = 0  # sm_sent when the last <r/> went out
        self._ack_timer: asyncio.TimerHandle | None = None
        self._pending: list[bytes] | None = None  # written in this turn of the loop, sent by `flush`
        self._lock = asyncio.Lock()  # one runner of effects at a time (reading and dialback answers)

    @property
    def secure_method(self) -> str:
        """How the peer was authenticated: "external", "dialback", or "none" yet (for status pages)."""
        if self.machine.authenticated_external:
            return "external"
        return "dialback" if self.machine.pairs else "none"

    @property
    def outgoing(self) -> bool:
        return self.machine.outgoing

    def __repr__(self) -> str:
        return f"<ServerConnection {self.machine!r} {self.peer_ip}>"

    # -- writing --------------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue bytes; everything written during one event-loop turn goes out in one send."""
        if self.closed or self.writer.is_closing():
            return
        if self._pending is None:
            self._pending = [data]
            asyncio.get_running_loop().call_soon(self.flush)
        else:
            self._pending.append(data)

    def flush(self) -> None:
        """Send what was queued; done at the end of the loop turn, and before draining, TLS or closing."""
        pending, self._pending = self._pending, None
        if not pending or self.closed or self.writer.is_closing():
            return
        self.writer.write(pending[0] if len(pending) == 1 else b"".join(pending))
        if self.writer.transport.get_write_buffer_size() > MAX_UNSENT:
            log.warning("s2s %s: the remote server does not read; dropping the connection", self.machine.remote)
            self.abort()

    def send_stanza(self, element: etree._Element, local: str) -> None:
        """Write a stanza of our domain `local` to the remote server (outgoing streams), in the server
        namespace, and keep it until confirmed."""
        self.stanzas_out += 1
        self.last_active = time.monotonic()
        self.federation.count("stanzas_out")
        self.write(server_bytes(element))
        now = time.monotonic()
        if self.machine.sm_requested:
            self.sm_sent += 1
            self.unacked.append(Sent(element, local, self.sm_sent, now))
            self._want_ack()
            return
        unacked = self.unacked
        while unacked and unacked[0].at < now - IN_FLIGHT_WINDOW:
            unacked.popleft()
        unacked.append(Sent(element, local, 0, now))

    def acked(self, h: int) -> None:
        """The peer handled `h` (modulo 2^32) stanzas of the session: forget those."""
        handled = self.sm_acked + (h - self.sm_acked) % sm.MODULUS
        if handled > self.sm_sent:
            raise StreamError.undefined_condition(f"Acknowledged {h} stanzas but only {self.sm_sent} were sent")
        unacked = self.unacked
        while unacked and unacked[0].seq <= handled:
            unacked.popleft()
        self.sm_acked = handled
        self._ack_requested = False
        if unacked:
            self._want_ack()

    def _want_ack(self) -> None:
        """Stanzas were sent since the last <r/>: ask now if `ACK_EVERY` of them wait, else within
        `ACK_DELAY`; while an <r/> is unanswered its answer decides."""
        if self._ack_requested:
            return
        if self.sm_sent - self._requested_upto >= ACK_EVERY:
            self._request_ack()
        elif self._ack_timer is None:
            self._ack_timer = asyncio.get_running_loop().call_later(ACK_DELAY, self._request_ack)

    def _request_ack(self) -> None:
        self._cancel_ack_timer()
        if self._ack_requested or self.closed or self.machine.phase is not s2s.Phase.READY \
                or self.sm_sent == self.sm_acked:
            return  # nothing may follow our `</stream:stream>`; nothing to confirm
        self._ack_requested = True
        self._requested_upto = self.sm_sent
        self.write(sm.REQUEST_BYTES)

    def _cancel_ack_timer(self) -> None:
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None

    def count_from(self, handled: int) -> None:
        """Stream management starts (fresh: 0) or resumes (the peer's count) on this stream."""
        self.sm_sent = self.sm_acked = self._requested_upto = handled
        self._ack_requested = False
        self._cancel_ack_timer()

    def abort(self) -> None:
        self.closed = True
        self._cancel_ack_timer()
        self.ready.set()
        with contextlib.suppress(Exception):
            self.writer.transport.abort()

    def close(self) -> None:
        """Close politely (idle, shutdown): our `</stream:stream>`, then the socket."""
        self.machine.close()
        self.federation.spawn(self._carry_out(), f"s2s-close-{self.machine.remote}")

    # -- reading --------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Negotiate and serve until the stream ends; always tells the federation the link is gone."""
        cfg = self.federation.config
        try:
            await self._carry_out()
            deadline = time.monotonic() + cfg.auth_timeout
            while not self.closed:
                # Until authenticated the whole negotiation has auth_timeout; afterwards a stream that
                # carried nothing either way for idle_timeout is closed, and a closing one has CLOSE_GRACE.
                if self.machine.phase is s2s.Phase.CLOSING:
                    if self._closing_until is None:
                        self._closing_until = time.monotonic() + CLOSE_GRACE
                    remaining = self._closing_until - time.monotonic()
                elif self.machine.pairs:
                    remaining = self.last_active + cfg.idle_timeout - time.monotonic()
                    if remaining <= 0:
                        log.info("s2s %s: idle, closing", self.machine.remote)
                        self.machine.close()
                        await self._carry_out()
                        continue
                else:
                    remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                try:
                    async with asyncio.timeout(remaining):
                        data = await self.reader.read(READ_SIZE)
                except TimeoutError:
                    if self.machine.pairs and self.machine.phase is not s2s.Phase.CLOSING:
                        continue  # maybe idle: the next round decides, counting what was written meanwhile
                    raise
                if not data:
                    break
                self.last_active = time.monotonic()
                try:
                    events = self.parser.feed(data)
                except StreamError as err:
                    self.machine.receive(self.parser.take_events())
                    self.machine.receive_error(err)
                else:
                    self.machine.receive(events)
                await self._carry_out()
        except TimeoutError:
            if self.machine.phase is s2s.Phase.CLOSING:
                log.info("s2s %s: no </stream:stream> in answer to ours; dropping the connection", self.machine.remote)
            else:
                log.info("s2s %s: timed out", self.machine.remote)
                self.machine.stream_error(StreamError.connection_timeout())
                with contextlib.suppress(Exception):
                    await self._carry_out()
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            log.info("s2s %s: connection lost: %s", self.machine.remote, exc)
        except Exception:
            log.exception("s2s %s: driver error", self.machine.remote)
        finally:
            with contextlib.suppress(Exception):
                self.flush()  # a stream error or close written last
            self.closed = True
            self._cancel_ack_timer()
            self.ready.set()
            with contextlib.suppress(Exception):
                self.writer.close()
            self.federation.lost(self)
            self.finished.set()

    async def _carry_out(self) -> None:
        async with self._lock:
            await self._effects()
            machine = self.machine
            if not machine.outgoing and not self._checked and machine.remote:
                # The peer named itself in its header: a refused domain stops here.
                self._checked = True
                if self._refused(machine.remote):
                    await self._effects()

    async def _effects(self) -> None:
        machine = self.machine
        while (effect := machine.next_effect()) is not None:
            if isinstance(effect, fx.Write):
                self.write(effect.data)
            elif isinstance(effect, Stanza):
                await self._deliver(effect.element)
            elif isinstance(effect, fx.SendStreamError):
                log.info("s2s %s: stream error %s", machine.remote, effect.error)
                self.write(effect.error.to_bytes())
            elif isinstance(effect, fx.Closed):
                self.flush()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.writer.drain(), 1)
                self.closed = True
                self.ready.set()
                with contextlib.suppress(Exception):
                    self.writer.close()
            elif effect is fx.START_TLS:
                await self._start_tls()
            elif effect is fx.RESTART:
                self.parser.reset()
            elif isinstance(effect, s2s.VerifyDialback | s2s.CheckExternal) and self._refused(
                    effect.remote, dialback_for=effect.local if isinstance(effect, s2s.VerifyDialback) else None):
                continue
            elif isinstance(effect, s2s.VerifyDialback):
                # Asking the authoritative server takes a round trip (maybe a new connection): reading
                # goes on meanwhile, the machine holds the input until the answer.
                self.federation.spawn(self._answer_dialback(effect), f"s2s-dialback-{effect.remote}")
            elif isinstance(effect, s2s.CheckExternal):
                # RFC 6120 §6.4.4 / RFC 6125: the certificate must name the domain the peer authenticates as.
                valid = self.federation.network.verify_server(self.peer_chain, effect.remote)
                self.certificate_valid = self.certificate_valid or valid
                machine.external_result(valid)
            elif isinstance(effect, s2s.VerifyAnswer):
                self.federation.verify_answer(effect)
            elif isinstance(effect, s2s.Authorized):
                self.federation.authorized(self, effect)
            elif isinstance(effect, s2s.Acked):
                try:
                    self.acked(effect.h)
                except StreamError as err:
                    machine.stream_error(err)
            elif isinstance(effect, s2s.SmStarted | s2s.SmFailed):
                self.federation.managed(self, effect)
            elif isinstance(effect, s2s.ResumeCheck):
                machine.resume_result(self.federation.resume_check(effect))
            elif isinstance(effect, s2s.Refused | s2s.TlsNeeded):
                log.warning("s2s %s refused us: %s", machine.remote, effect)
                self.federation.refused(self, effect)

    def _refused(self, remote: str, *, dialback_for: str | None = None) -> bool:
        """A blocked (or, in allowlist mode, unlisted) domain gets a stream error, before anything of
        theirs is taken ([federation] policy); on a stream that carries other domains already, a
        policy-violation dialback error instead, which leaves them be (XEP-0220 §2.4)."""
        error = self.federation.domain_policy.stream_refusal(remote)
        if error is None:
            return False
        log.info("s2s: refusing %s: %s", remote, error.text)
        if dialback_for is not None and self.machine.pairs:
            self.machine.dialback_result(remote, dialback_for, "policy-violation")
        else:
            self.machine.stream_error(error)
        return True

    async def _answer_dialback(self, effect: s2s.VerifyDialback) -> None:
        valid = await self.federation.verify_dialback(effect)
        self.machine.dialback_result(effect.remote, effect.local, valid)
        await self._carry_out()

    async def _deliver(self, element: etree._Element) -> None:
        self.stanzas_in += 1
        self.federation.count("stanzas_in")
        sender = element.get("from", "").partition("/")[0].rpartition("@")[2].lower()
        if not self.federation.domain_policy.accepts(sender):
            return  # blocked after this stream was authenticated: nothing of theirs is taken
        try:
            await self.federation.deliver(client_stanza(element))
        except Exception:
            log.exception("s2s %s: routing a stanza failed", self.machine.remote)

    def secured(self, stream: TlsSession) -> None:
        """Incoming TLS is up on `stream` (net/s2s_tls.py): read and write through it from now on; the
        peer's certificate, if it showed one, is checked when it asks for SASL EXTERNAL."""
        self.reader = self.writer = stream  # type: ignore[assignment]
        self.tls_version = stream.version
        self.peer_chain = stream.peer_chain

    async def _start_tls(self) -> None:
        cfg = self.federation.config
        machine = self.machine
        self.flush()  # <proceed/> or <starttls/>: the last bytes before the handshake
        await self.writer.drain()
        if not machine.outgoing:
            self.secured(await self.federation.network.accept_tls(self.reader, self.writer))
            self.parser.reset()
            machine.tls_done(external=bool(self.peer_chain))
            return
        context = self.federation.network.client_context(machine.local or "", verify=self.verify_certificate)
        try:
            await self.writer.start_tls(context, server_hostname=machine.remote,
                                        ssl_handshake_timeout=cfg.tls_timeout)
            if self.verify_certificate:
                self.federation.network.check_peer_name(self.writer.get_extra_info("ssl_object"), machine.remote)
        except ssl.SSLCertVerificationError as exc:
            self.tls_failed = True
            self.failure = f"certificate not valid: {exc.verify_message}"
            raise
        self.parser.reset()
        ssl_object = self.writer.get_extra_info("ssl_object")
        self.tls_version = ssl_object.version() if ssl_object is not None else None
        self.certificate_valid = self.verify_certificate
        machine.tls_done()
