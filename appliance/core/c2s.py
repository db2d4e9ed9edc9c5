"""Client sessions: stream negotiation (STARTTLS, SASL, bind) and stanza intake, whatever the transport.

A transport (TCP today; BOSH and WebSocket later) parses bytes into events and hands them to
`ClientSession.receive`; the session answers through the small `Transport` interface. Events are
processed in order by a worker task that exists only while there is work, so an idle session
costs no task.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from lxml import etree

from appliance.core import events
from appliance.core.accounts import AccountService
from appliance.core.events import SessionEvent
from appliance.xmpp import stream as xs
from appliance.xmpp.errors import StanzaError, StreamError, error_reply
from appliance.xmpp.jid import JID, JIDError
from appliance.xmpp.ns import NS_BIND, NS_CLIENT, NS_PING, NS_SESSION
from appliance.xmpp.parser import Event, Stanza, StreamClose, StreamOpen
from appliance.xmpp.sasl import SaslFailure, plain, scram
from appliance.xmpp.stream import C2SState

if TYPE_CHECKING:
    from appliance.config.model import Config
    from appliance.core.api import Host
    from appliance.core.iq import PendingIqs
    from appliance.core.router import Router
    from appliance.core.sessions import SessionDirectory
    from appliance.util.ratelimit import FailureTracker

log = logging.getLogger(__name__)

BIND = f"{{{NS_BIND}}}bind"
LEGACY_SESSION = f"{{{NS_SESSION}}}session"
MAX_SEND_BUFFER = 8 * 1024 * 1024
MAX_INBOX = 1000


class Transport(Protocol):
    """What a session needs from the connection below it."""

    peer_ip: str
    secure: bool
    loopback: bool
    channel_bindings: dict[str, bytes]

    def write(self, data: bytes) -> None: ...

    def open_stream(self, from_: str, stream_id: str) -> None:
        """Write our stream header (TCP) or its framing equivalent (WebSocket <open/>, BOSH)."""

    def close_stream(self) -> None:
        """Write our stream close (`</stream:stream>` or `<close/>`)."""

    def write_stream_error(self, error: StreamError) -> None:
        """Write a stream error in this transport's framing."""

    def buffered(self) -> int: ...

    async def start_tls(self) -> None: ...

    def can_start_tls(self) -> bool: ...

    def reset_parser(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class C2SServices:
    """Everything client sessions share (one instance per server)."""

    config: Config
    hosts: dict[str, Host]
    sessions: SessionDirectory
    router: Router
    accounts: AccountService
    pending: PendingIqs
    ip_failures: FailureTracker
    account_failures: FailureTracker
    fake_secret: bytes
    connections: set[ClientSession]
    stats: dict[str, int]


class ClientSession:
    """One client stream from connection to close."""

    __slots__ = (
        "__weakref__",
        "_auth_attempts",
        "_inbox",
        "_sasl",
        "_worker",
        "available",
        "directed",
        "header_sent",
        "host",
        "id",
        "interested",
        "jid",
        "last_rx",
        "ping_sent",
        "presence",
        "priority",
        "services",
        "started",
        "state",
        "transport",
        "username",
    )

    def __init__(self, services: C2SServices, transport: Transport) -> None:
        self.services = services
        self.transport = transport
        self.state = C2SState.CONNECTED
        self.id = secrets.token_hex(8)
        self.host: Host | None = None
        self.username: str | None = None
        self.jid: JID = None  # type: ignore[assignment]  # set at bind
        self.available = False
        self.priority = 0
        self.presence: etree._Element | None = None
        self.interested = False
        self.directed: set[JID] = set()
        self.header_sent = False
        self.started = self.last_rx = time.monotonic()
        self.ping_sent = 0.0
        self._inbox: deque[Event | StreamError] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._sasl: scram.ScramServer | None = None
        self._auth_attempts = 0
        services.connections.add(self)

    def __repr__(self) -> str:
        return f"<ClientSession {self.id} {self.jid or self.transport.peer_ip} {self.state.value}>"

    # -- intake -------------------------------------------------------------------------------

    def receive(self, new_events: list[Event]) -> None:
        """Queue parsed events; the worker handles them in order."""
        self.last_rx = time.monotonic()
        self.ping_sent = 0.0
        if not new_events or self.state is C2SState.CLOSED:
            return
        inbox = self._inbox
        if inbox is None:
            inbox = self._inbox = deque()
        inbox.extend(new_events)
        if len(inbox) > MAX_INBOX:
            self.transport.pause()
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._drain(), name=f"c2s-{self.id}")

    def receive_error(self, error: StreamError) -> None:
        """The parser rejected the input: close after the events already queued."""
        self.receive([])
        inbox = self._inbox
        if inbox is None:
            inbox = self._inbox = deque()
        inbox.append(error)
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._drain(), name=f"c2s-{self.id}")

    def touch(self) -> None:
        """Bytes arrived (even a whitespace keepalive): the peer is alive."""
        self.last_rx = time.monotonic()
        self.ping_sent = 0.0

    async def _drain(self) -> None:
        inbox = self._inbox
        try:
            while inbox and self.state is not C2SState.CLOSED:
                item = inbox.popleft()
                if len(inbox) == MAX_INBOX // 2:
                    self.transport.resume()
                try:
                    if isinstance(item, StreamError):
                        raise item
                    await self._handle(item)
                except StreamError as err:
                    self.stream_error(err)
                except Exception:
                    log.exception("session %s: internal error", self.id)
                    self.stream_error(StreamError.internal_server_error())
        finally:
            self._worker = None
            if self._inbox is not None and not self._inbox:
                self._inbox = None

    async def _handle(self, event: Event) -> None:
        if isinstance(event, Stanza):
            element = event.element
            xs.expect(self.state, element.tag)
            if self.state is C2SState.READY:
                await self._stanza(element)
            else:
                await self._negotiate(element)
        elif isinstance(event, StreamOpen):
            self._stream_open(event)
        elif isinstance(event, StreamClose):
            self.close_stream()

    # -- stream header and features ---------------------------------------------------------

    def _stream_open(self, event: StreamOpen) -> None:
        to = event.attrs.get("to", "")
        host_name = to
        try:
            host_name = JID.parse(to).domain if to else ""
        except JIDError:
            host_name = ""
        host = self.services.hosts.get(host_name)
        if self.host is not None and host is not self.host:
            host = None
        self._send_header(host_name if host else next(iter(self.services.hosts), "localhost"))
        if self.state not in (C2SState.CONNECTED, C2SState.UNAUTHENTICATED, C2SState.AUTHENTICATED):
            raise StreamError.not_authorized("Stream restarted at the wrong time")
        if event.default_namespace != NS_CLIENT:
            raise StreamError.invalid_namespace("The content namespace must be jabber:client")
        version = event.attrs.get("version", "")
        major = version.partition(".")[0]
        if not major.isdigit() or int(major) != 1:
            raise StreamError.unsupported_version("Only XMPP 1.0 streams are supported")
        if host is None:
            raise StreamError.host_unknown(f"This server does not serve '{to}'")
        self.host = host
        if self.state is C2SState.CONNECTED:
            self.state = C2SState.UNAUTHENTICATED
        self.transport.write(xs.features_element(self._features()))

    def _send_header(self, host_name: str) -> None:
        self.id = secrets.token_hex(8)
        self.transport.open_stream(host_name, self.id)
        self.header_sent = True

    def _tls_required(self) -> bool:
        c2s = self.services.config.c2s
        if not c2s.require_encryption:
            return False
        return not (c2s.allow_plaintext_on_loopback and self.transport.loopback)

    def _mechanisms(self) -> list[str]:
        secure = self.transport.secure
        if not secure and self._tls_required():
            return []
        names = scram.mechanism_names(secure, self.transport.channel_bindings if secure else {})
        if not secure and "PLAIN" not in names:
            names.append("PLAIN")  # only reachable when plaintext is explicitly allowed
        return names

    def _features(self) -> list[etree._Element]:
        features: list[etree._Element] = []
        if self.state is C2SState.UNAUTHENTICATED:
            if not self.transport.secure and self.transport.can_start_tls():
                features.append(xs.starttls_feature(self._tls_required()))
            mechanisms = self._mechanisms()
            if mechanisms:
                features.append(xs.mechanisms_feature(mechanisms))
        elif self.state is C2SState.AUTHENTICATED:
            features.append(xs.bind_feature())
            if self.services.config.c2s.legacy_session:
                features.append(xs.session_feature())
        assert self.host is not None
        for provider in self.host.stream_features:
            element = provider(self)
            if element is not None:
                features.append(element)
        return features

    # -- negotiation ------------------------------------------------------------------------

    async def _negotiate(self, element: etree._Element) -> None:
        tag = element.tag
        if tag == xs.STARTTLS:
            await self._starttls()
        elif tag == xs.AUTH:
            await self._auth(element)
        elif tag in (xs.RESPONSE, xs.ABORT):
            await self._sasl_step(element)
        elif tag == xs.IQ:
            await self._negotiation_iq(element)

    async def _starttls(self) -> None:
        if self.transport.secure or not self.transport.can_start_tls():
            self.transport.write(b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            self.close_stream()
            return
        self.transport.write(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        if self._inbox:
            self._inbox.clear()  # anything pipelined after <starttls/> is discarded (RFC 6120 §5.4.3.3)
        self.transport.reset_parser()
        await self.transport.start_tls()
        self.state = C2SState.UNAUTHENTICATED

    async def _auth(self, element: etree._Element) -> None:
        mechanism = element.get("mechanism", "")
        if mechanism not in self._mechanisms():
            if not self.transport.secure and self._tls_required():
                self._sasl_failure("encryption-required", "Use STARTTLS first")
            else:
                self._sasl_failure("invalid-mechanism")
            return
        blocked = self.services.ip_failures.blocked_for(self.transport.peer_ip, time.monotonic())
        if blocked:
            self._sasl_failure("temporary-auth-failure", f"Too many failed logins; try again in {int(blocked) + 1} s")
            return
        try:
            data = _b64(element.text)
        except SaslFailure as failure:
            self._sasl_failure(failure.condition)
            return
        self.state = C2SState.AUTHENTICATING
        try:
            if mechanism == "PLAIN":
                await self._auth_plain(data)
            else:
                await self._auth_scram_start(mechanism, data)
        except SaslFailure as failure:
            await self._auth_failed(failure.condition)

    async def _auth_plain(self, data: bytes) -> None:
        if not data:
            raise SaslFailure("malformed-request")  # PLAIN needs an initial response
        authzid, authcid, password = plain.parse(data)
        jid = self._account_jid(authcid)
        self._check_authzid(authzid, jid)
        if self._account_blocked(jid):
            raise SaslFailure("temporary-auth-failure")
        if not await self.services.accounts.verify_plain(jid, password):
            self._count_failure(jid)
            raise SaslFailure("not-authorized")
        self._auth_succeeded(jid, b"")

    async def _auth_scram_start(self, mechanism: str, data: bytes) -> None:
        hash_name, plus = scram.parse_mechanism(mechanism)
        bindings = self.transport.channel_bindings if self.transport.secure else {}
        server = scram.ScramServer(
            hash_name,
            plus=plus,
            channel_bindings=bindings,
            fake_secret=self.services.fake_secret,
            fake_iterations=self.services.config.limits.scram_iterations,
        )
        username = server.first(data)
        jid = self._account_jid(username)
        if self._account_blocked(jid):
            raise SaslFailure("temporary-auth-failure")
        keys = await self.services.accounts.scram_keys(jid, hash_name)
        self._sasl = server
        self.username = jid.local
        self.transport.write(xs.sasl_element("challenge", server.challenge(keys)))

    async def _sasl_step(self, element: etree._Element) -> None:
        server, self._sasl = self._sasl, None
        if element.tag == xs.ABORT or server is None:
            self.state = C2SState.UNAUTHENTICATED
            self._sasl_failure("aborted")
            return
        assert self.host is not None and self.username is not None
        jid = JID.make(self.username, self.host.name, None)
        try:
            server_final = server.final(_b64(element.text))
            self._check_authzid(server.authzid or "", jid)
        except SaslFailure as failure:
            if failure.condition == "not-authorized":
                self._count_failure(jid)
            await self._auth_failed(failure.condition)
            return
        self._auth_succeeded(jid, server_final)

    def _account_jid(self, username: str) -> JID:
        assert self.host is not None
        try:
            return JID.make(username, self.host.name, None)
        except JIDError:
            raise SaslFailure("not-authorized") from None

    @staticmethod
    def _check_authzid(authzid: str, jid: JID) -> None:
        if not authzid:
            return
        try:
            wanted = JID.parse(authzid)
        except JIDError:
            raise SaslFailure("invalid-authzid") from None
        if wanted.bare() != jid:
            raise SaslFailure("invalid-authzid")

    def _account_blocked(self, jid: JID) -> bool:
        return self.services.account_failures.blocked_for(str(jid), time.monotonic()) > 0

    def _count_failure(self, jid: JID) -> None:
        now = time.monotonic()
        self.services.stats["auth_failures"] = self.services.stats.get("auth_failures", 0) + 1
        if self.services.ip_failures.record(self.transport.peer_ip, now):
            log.warning("blocking %s after repeated failed logins", self.transport.peer_ip)
        if self.services.account_failures.record(str(jid), now):
            log.warning("blocking logins to %s after repeated failures", jid)

    async def _auth_failed(self, condition: str) -> None:
        self._auth_attempts += 1
        self.state = C2SState.UNAUTHENTICATED
        self._sasl = None
        delay = self.services.config.limits.auth_failure_delay
        if condition == "not-authorized" and delay > 0:
            await asyncio.sleep(delay)
        self._sasl_failure(condition)
        if self._auth_attempts >= 3:
            self.stream_error(StreamError.policy_violation("Too many failed authentication attempts"))

    def _auth_succeeded(self, jid: JID, additional: bytes) -> None:
        self.username = jid.local
        self.services.account_failures.clear(str(jid))
        self.state = C2SState.AUTHENTICATED
        self.transport.write(xs.sasl_element("success", additional or None))
        if self._inbox:
            self._inbox.clear()
        self.transport.reset_parser()
        log.info("session %s: %s authenticated from %s", self.id, jid, self.transport.peer_ip)

    def _sasl_failure(self, condition: str, text: str = "") -> None:
        if self.state is C2SState.AUTHENTICATING:
            self.state = C2SState.UNAUTHENTICATED
        self.transport.write(xs.sasl_element("failure", None, condition, text))

    async def _negotiation_iq(self, element: etree._Element) -> None:
        assert self.host is not None
        if self.state is C2SState.AUTHENTICATED:
            if element.get("type") == "set" and len(element) == 1 and element[0].tag == BIND:
                self._bind(element)
                return
            self._reply_error(element, StanzaError.not_authorized("Bind a resource first"))
            return
        # Before authentication only registered pre-auth handlers (in-band registration) answer.
        payload = element[0] if len(element) == 1 else None
        handler = self.host.preauth_iq.get(payload.tag) if payload is not None else None
        if handler is None:
            self._reply_error(element, StanzaError.service_unavailable())
            return
        try:
            result = await handler(element, self)
        except StanzaError as err:
            self._reply_error(element, err)
            return
        reply = etree.Element(xs.IQ, nsmap={None: NS_CLIENT})
        reply.set("type", "result")
        reply.set("id", element.get("id", ""))
        if result is not None:
            reply.append(result)
        self.send(reply)

    def _bind(self, element: etree._Element) -> None:
        assert self.host is not None and self.username is not None
        c2s = self.services.config.c2s
        requested = element[0].findtext(f"{{{NS_BIND}}}resource")
        resource = (requested or "").strip()
        try:
            jid = JID.make(self.username, self.host.name, resource or _random_resource())
        except JIDError:
            self._reply_error(element, StanzaError.bad_request("The requested resource is not valid"))
            return
        directory = self.services.sessions
        existing = directory.get(jid)
        if existing is not None:
            if c2s.resource_conflict == "reject":
                self._reply_error(element, StanzaError.conflict("That resource is in use"))
                return
            existing.close("conflict", "Replaced by a new connection")
        elif directory.count_for(jid) >= c2s.max_resources:
            self._reply_error(element, StanzaError.resource_constraint("Too many resources bound to this account"))
            return
        self.jid = jid
        directory.add(self)
        self.state = C2SState.READY
        reply = etree.Element(xs.IQ, nsmap={None: NS_CLIENT})
        reply.set("type", "result")
        reply.set("id", element.get("id", ""))
        bind = etree.SubElement(reply, BIND, nsmap={None: NS_BIND})
        etree.SubElement(bind, f"{{{NS_BIND}}}jid").text = str(jid)
        self.send(reply)
        log.info("session %s: bound %s", self.id, jid)
        asyncio.get_running_loop().create_task(
            self.host.hooks.fire(events.SESSION_BOUND, SessionEvent(self)), name=f"bound-{self.id}"
        )

    # -- stanzas ----------------------------------------------------------------------------

    async def _stanza(self, element: etree._Element) -> None:
        tag = element.tag
        claimed = element.get("from")
        if claimed is not None and claimed != str(self.jid):
            try:
                claimed_jid = JID.parse(claimed)
            except JIDError:
                claimed_jid = None
            if claimed_jid is None or claimed_jid not in (self.jid, self.jid.bare()):
                raise StreamError.invalid_from("The 'from' address is not yours")
        element.set("from", str(self.jid))
        if tag == xs.IQ:
            iq_type = element.get("type")
            if iq_type not in ("get", "set", "result", "error") or element.get("id") is None:
                self._reply_error(element, StanzaError.bad_request("An IQ needs an 'id' and a valid 'type'"))
                return
            if iq_type == "set" and len(element) == 1 and element[0].tag == LEGACY_SESSION:
                self._reply_result(element)
                return
            if iq_type == "set" and len(element) == 1 and element[0].tag == BIND:
                self._reply_error(element, StanzaError.not_allowed("A resource is already bound"))
                return
            if iq_type in ("result", "error") and element.get("to") in (None, self.jid.domain):
                self.services.pending.resolve(element)
                return
        elif tag == xs.PRESENCE and element.get("type") not in _PRESENCE_TYPES:
            self._reply_error(element, StanzaError.bad_request("Unknown presence type"))
            return
        self.services.stats["stanzas_in"] = self.services.stats.get("stanzas_in", 0) + 1
        if tag == xs.MESSAGE:  # for the console's "messages today"
            self.services.stats["messages_in"] = self.services.stats.get("messages_in", 0) + 1
        await self.services.router.route(element, origin=self)

    def _reply_result(self, element: etree._Element) -> None:
        reply = etree.Element(xs.IQ, nsmap={None: NS_CLIENT})
        reply.set("type", "result")
        reply.set("id", element.get("id", ""))
        self.send(reply)

    def _reply_error(self, element: etree._Element, err: StanzaError) -> None:
        if element.get("type") == "error":
            return
        reply = error_reply(element, err)
        if self.state is not C2SState.READY:
            reply.attrib.pop("to", None)
            reply.attrib.pop("from", None)
        self.send(reply)

    # -- output -----------------------------------------------------------------------------

    def send(self, element: etree._Element) -> None:
        """Serialize and write one element; a reader too slow to keep up is disconnected."""
        if self.state is C2SState.CLOSED:
            return
        self.send_bytes(etree.tostring(element))

    def send_bytes(self, data: bytes) -> None:
        if self.state is C2SState.CLOSED:
            return
        self.transport.write(data)
        self.services.stats["stanzas_out"] = self.services.stats.get("stanzas_out", 0) + 1
        if self.transport.buffered() > MAX_SEND_BUFFER:
            log.warning("session %s: client does not read; disconnecting", self.id)
            self.stream_error(StreamError.policy_violation("Too much unread data"))

    def ping(self) -> None:
        """XEP-0199 ping to an idle bound client; any byte back counts as the answer."""
        assert self.host is not None
        self.ping_sent = time.monotonic()
        iq = etree.Element(xs.IQ, nsmap={None: NS_CLIENT})
        iq.set("type", "get")
        iq.set("id", self.services.pending.new_id())
        iq.set("from", self.host.name)
        iq.set("to", str(self.jid))
        etree.SubElement(iq, f"{{{NS_PING}}}ping", nsmap={None: NS_PING})
        self.send(iq)

    # -- closing ----------------------------------------------------------------------------

    def stream_error(self, error: StreamError) -> None:
        """Send a stream error and close (RFC 6120 §4.9)."""
        if self.state is C2SState.CLOSED:
            return
        if not self.header_sent:
            self._send_header(next(iter(self.services.hosts), "localhost"))
        log.info("session %s: stream error %s (%s)", self.id, error.condition, error.text or "")
        self.transport.write_stream_error(error)
        self.close_stream()

    def close(self, condition: str | None = None, text: str | None = None) -> None:
        """Close this session, with a stream error condition if given (used by other code)."""
        if condition:
            self.stream_error(StreamError(condition, text))
        else:
            self.close_stream()

    def close_stream(self) -> None:
        if self.state is C2SState.CLOSED:
            return
        if self.header_sent:
            self.transport.close_stream()
        self._finish()
        self.transport.close()

    def connection_lost(self) -> None:
        """The transport is gone (closed by either side)."""
        self._finish()

    def _finish(self) -> None:
        if self.state is C2SState.CLOSED:
            return
        was_ready = self.state is C2SState.READY
        self.state = C2SState.CLOSED
        self.services.connections.discard(self)
        if self._inbox:
            self._inbox.clear()
        if was_ready and self.host is not None:
            self.services.sessions.remove(self)
            asyncio.get_running_loop().create_task(
                self.host.hooks.fire(events.SESSION_CLOSED, SessionEvent(self)), name=f"closed-{self.id}"
            )


_PRESENCE_TYPES = frozenset(
    {None, "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error"}
)


def _b64(text: str | None) -> bytes:
    if text is None or text.strip() == "":
        return b""
    text = text.strip()
    if text == "=":
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SaslFailure("incorrect-encoding") from None


def _random_resource() -> str:
    return f"parlour-{secrets.token_hex(4)}"


SweepHook = Callable[[ClientSession], None]


def sweep(services: C2SServices, now: float) -> None:
    """Periodic housekeeping over all connections: handshake and idle timeouts, pings, parser hibernation."""
    c2s = services.config.c2s
    for session in list(services.connections):
        idle = now - session.last_rx
        if session.state is not C2SState.READY:
            if now - session.started > c2s.handshake_timeout:
                session.stream_error(StreamError.connection_timeout("Negotiation took too long"))
            continue
        if session.ping_sent and now - session.ping_sent > c2s.ping_timeout:
            session.stream_error(StreamError.connection_timeout("No answer to ping"))
        elif not session.ping_sent and idle > c2s.idle_timeout:
            session.ping()
        else:
            hibernate = getattr(session.transport, "hibernate", None)
            if hibernate is not None and idle > 5:
                hibernate()


__all__ = ["C2SServices", "ClientSession", "Transport", "sweep"]
