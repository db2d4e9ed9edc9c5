"""A client session: one stream from connection to close, whatever the transport. Stream negotiation
(STARTTLS, SASL, binding), stanza intake in order, output with stream management's queue and client
state indication's hold, and closing. Stream features, SASL2 success and resumption have their own
modules beside this one."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from lxml import etree

from appliance.core import events
from appliance.core.authn import SaslExchange
from appliance.core.c2s import authentication, features, resumption
from appliance.core.c2s.services import CSI_MODULE, SM_MODULE, C2SServices
from appliance.core.c2s.transport import DETACHED, Orphan, Transport
from appliance.core.csi import CsiQueue
from appliance.core.events import PushEvent, SessionEvent
from appliance.core.stream_management import reroute_unacked
from appliance.xmpp import sm
from appliance.xmpp import stream as xs
from appliance.xmpp.errors import StanzaError, StreamError, error_reply
from appliance.xmpp.jid import JID, JIDError
from appliance.xmpp.machine import response_version
from appliance.xmpp.ns import NS_BIND, NS_CLIENT, NS_PING, NS_SESSION
from appliance.xmpp.parser import Event, Stanza, StreamClose, StreamOpen
from appliance.xmpp.sasl import SaslFailure
from appliance.xmpp.stream import C2SState

if TYPE_CHECKING:
    from appliance.core.api import Host

log = logging.getLogger("appliance.core.c2s")

BIND = f"{{{NS_BIND}}}bind"
LEGACY_SESSION = f"{{{NS_SESSION}}}session"
MAX_SEND_BUFFER = 8 * 1024 * 1024
MAX_INBOX = 1000


class ClientSession:
    """One client stream from connection to close."""

    __slots__ = (
        "__weakref__",
        "_auth_attempts",
        "_csi",
        "_inbox",
        "_sasl",
        "_sm",
        "_worker",
        "available",
        "directed",
        "header_sent",
        "hibernated_at",
        "host",
        "id",
        "interested",
        "jid",
        "lang",
        "last_rx",
        "ping_sent",
        "presence",
        "priority",
        "services",
        "started",
        "state",
        "transport",
        "user_agent",
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
        self.lang: str | None = None  # the stream's xml:lang (RFC 6120 §4.7.4)
        self.started = self.last_rx = time.monotonic()
        self.ping_sent = 0.0
        self._inbox: deque[Event | StreamError] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._sasl: SaslExchange | None = None
        self._auth_attempts = 0
        self._sm: sm.StreamManagement | None = None  # once the client enabled stream management
        self._csi: CsiQueue | None = None  # only while the client is inactive (XEP-0352)
        self.hibernated_at = 0.0  # when the connection went away from a resumable session
        self.user_agent: str | None = None  # SASL2 <user-agent id=.../>
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
            if self.state is not C2SState.READY:
                await self._negotiate(element)
            elif element.tag in xs.STANZAS:
                await self._stanza(element)
                if self._sm is not None:
                    self._sm.handled += 1  # only now: whatever it caused (storage included) is done
            else:
                resumption.stream_element(self, element)
        elif isinstance(event, StreamOpen):
            await self._stream_open(event)
        elif isinstance(event, StreamClose):
            self.close_stream()

    # -- stream header and features ---------------------------------------------------------

    async def _stream_open(self, event: StreamOpen) -> None:
        to = event.attrs.get("to", "")
        host = self.services.hosts.get(to)  # the usual case: the host's name exactly, already canonical
        host_name = to
        if host is None:
            try:
                host_name = JID.parse(to).domain if to else ""
            except JIDError:
                host_name = ""
            host = self.services.hosts.get(host_name)
        if self.host is not None and host is not self.host:
            host = None
        self._send_header(host_name if host else next(iter(self.services.hosts), "localhost"), event.attrs)
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
        self.lang = event.attrs.get(XML_LANG)
        if self.state is C2SState.CONNECTED:
            self.state = C2SState.UNAUTHENTICATED
        self.transport.write(xs.features_element(await features.stream_features(self)))

    def _send_header(self, host_name: str, initial: dict[str, str] | None = None) -> None:
        """Our header; RFC 6120 §4.7.2 'to' = the client's 'from', §4.7.5 the lower version (none if none)."""
        self.id = secrets.token_hex(8)
        to = initial.get("from") if initial else None
        if to:
            try:
                JID.parse(to)
            except JIDError:
                to = None
        self.transport.open_stream(host_name, self.id, to, response_version(initial))
        self.header_sent = True

    def module_on(self, name: str) -> bool:
        """Whether the feature module `name` is loaded on this session's host."""
        return self.host is not None and name in self.loaded_modules()

    def loaded_modules(self) -> set[str]:
        """Names of the modules loaded on this session's host."""
        assert self.host is not None
        return {m.name for m in self.host.modules}

    def module_options(self, name: str) -> Any:
        """The options of module `name` on this session's host."""
        assert self.host is not None
        return getattr(self.host.config.modules, name)

    def advertised_bindings(self) -> list[str] | None:
        """Channel-binding types announced with XEP-0440 (None: not announced), best first."""
        return features.advertised_bindings(self)

    # -- negotiation ------------------------------------------------------------------------

    async def _negotiate(self, element: etree._Element) -> None:
        tag = element.tag
        if tag == xs.STARTTLS:
            await self._starttls()
        elif tag in (xs.AUTH, xs.AUTHENTICATE):
            await authentication.begin(self, element)
        elif tag in (xs.RESPONSE, xs.ABORT, xs.SASL2_RESPONSE, xs.SASL2_ABORT):
            await authentication.respond(self, element)
        elif tag == xs.IQ:
            await self._negotiation_iq(element)
        elif tag == sm.RESUME:
            await resumption.resume(self, element)
        elif tag == sm.ENABLE:
            self.transport.write(sm.failed("unexpected-request"))  # XEP-0198 §3: bind first

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

    # -- SASL: the exchange lives in authentication.py; these answer its questions -------------

    def account_jid(self, username: str) -> JID:
        """The account a SASL user name means on this host (unknown syntax: not-authorized)."""
        assert self.host is not None
        try:
            return JID.make(username, self.host.name, None)
        except JIDError:
            raise SaslFailure("not-authorized") from None

    def check_not_blocked(self, jid: JID) -> None:
        if self.services.account_failures.blocked_for(str(jid), time.monotonic()) > 0:
            raise SaslFailure("temporary-auth-failure")

    # -- pre-bind IQs and resource binding (RFC 6120 §7) ------------------------------------

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
        requested = element[0].findtext(f"{{{NS_BIND}}}resource")
        resource = (requested or "").strip()
        try:
            jid = JID.make(self.username, self.host.name, resource or _random_resource())
        except JIDError:
            self._reply_error(element, StanzaError.bad_request("The requested resource is not valid"))
            return
        error = self.bind_jid(jid, replace=self.services.config.c2s.resource_conflict == "replace")
        if error is not None:
            self._reply_error(element, error)
            return
        reply = etree.Element(xs.IQ, nsmap={None: NS_CLIENT})
        reply.set("type", "result")
        reply.set("id", element.get("id", ""))
        bind = etree.SubElement(reply, BIND, nsmap={None: NS_BIND})
        etree.SubElement(bind, f"{{{NS_BIND}}}jid").text = str(jid)
        self.send(reply)
        self.announce_bound()

    def bind_jid(self, jid: JID, *, replace: bool) -> StanzaError | None:
        """Take `jid` for this session (the one place that enforces conflicts and the resource limit)."""
        directory = self.services.sessions
        existing = directory.get(jid)
        if existing is not None:
            if not replace:
                return StanzaError.conflict("That resource is in use")
            existing.close("conflict", "Replaced by a new connection")
        elif directory.count_for(jid) >= self.services.config.c2s.max_resources:
            return StanzaError.resource_constraint("Too many resources bound to this account")
        self.jid = jid
        directory.add(self)
        self.state = C2SState.READY
        return None

    def announce_bound(self) -> None:
        assert self.host is not None
        log.info("session %s: bound %s", self.id, self.jid)
        asyncio.get_running_loop().create_task(
            self.host.hooks.fire(events.SESSION_BOUND, SessionEvent(self)), name=f"bound-{self.id}"
        )

    def set_client_state(self, tag: str) -> None:
        if tag == xs.CSI_INACTIVE:
            if self._csi is None:
                self._csi = CsiQueue(self.module_options(CSI_MODULE).max_held)
            return
        csi, self._csi = self._csi, None
        if csi is not None:
            for data in csi.release():
                self._emit(data)

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
        if self.lang and XML_LANG not in element.attrib:
            element.set(XML_LANG, self.lang)  # RFC 6120 §8.1.5: the stream's language, when the stanza has none
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
        """Serialize and write one stanza; a reader too slow to keep up is disconnected."""
        if self.state is C2SState.CLOSED:
            return
        self.send_bytes(etree.tostring(element), element)

    def send_bytes(self, data: bytes, element: etree._Element | None = None) -> None:
        """Write one serialized stanza (`element`, when the caller has it, spares a parse)."""
        if self.state is C2SState.CLOSED:
            return
        csi = self._csi
        if csi is not None:
            if csi.hold(data, element):
                return
            for held in csi.release():
                self._emit(held)
        self._emit(data, element)

    def _emit(self, data: bytes, element: etree._Element | None = None) -> None:
        stats = self.services.stats
        stats["stanzas_out"] = stats.get("stanzas_out", 0) + 1
        state = self._sm
        if state is None:
            self.transport.write(data)
        else:
            state.outbound(data)
            if state.unacked > state.max_queue:
                log.warning("session %s: %d stanzas unacknowledged; closing", self.id, state.unacked)
                self._later(self.stream_error, StreamError.resource_constraint("Too many unacknowledged stanzas"))
                return
            if self.hibernated_at:
                self._wake_devices(data, element)
                return
            self.transport.write(data)
            if not state.requested_at and state.unacked % self.module_options(SM_MODULE).request_every == 0:
                self.request_ack(state)
        if self.transport.buffered() > MAX_SEND_BUFFER:
            log.warning("session %s: client does not read; disconnecting", self.id)
            self._later(self.stream_error, StreamError.policy_violation("Too much unread data"))

    def request_ack(self, state: sm.StreamManagement) -> None:
        self.transport.write(sm.REQUEST_BYTES)
        state.requested_at = time.monotonic()

    def _later(self, action: Callable[..., None], *args: object) -> None:
        """Run `action` after the current delivery, so whoever is sending to us is not disturbed."""
        asyncio.get_running_loop().call_soon(action, *args)

    def _wake_devices(self, data: bytes, element: etree._Element | None) -> None:
        """A message queued for a hibernated session: the push module may wake the device."""
        if self.host is None or not data.startswith(b"<message") or not self.host.hooks.has(events.PUSH_NEEDED):
            return
        stanza = element if element is not None else etree.fromstring(data)
        self._spawn(self.host.hooks.fire(events.PUSH_NEEDED, PushEvent(self.jid.bare(), stanza, self)), "push")

    def _spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"{what}-{self.id}")
        background = self.services.background
        background.add(task)
        task.add_done_callback(background.discard)

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
        self.finish()
        self.transport.close()

    def connection_lost(self) -> None:
        """The transport is gone (closed by either side): hibernate if resumable, else end."""
        if self.state is C2SState.CLOSED or self.hibernated_at:
            return
        state = self._sm
        if state is not None and state.resumable and self.state is C2SState.READY:
            self._hibernate()
        else:
            self.finish()

    def drop(self) -> None:
        """The connection is dead (no answer in time): close it without a word, then as connection_lost."""
        self.transport.close()
        self.connection_lost()

    def _hibernate(self) -> None:
        transport = self.transport
        transport.session = Orphan(self.id)  # a late callback from it must not touch us
        self.transport = DETACHED
        self.hibernated_at = time.monotonic()
        self.ping_sent = 0.0
        log.info("session %s: %s lost its connection; resumable for %d s", self.id, self.jid,
                 int(self.module_options(SM_MODULE).resume_timeout))

    def finish(self) -> None:
        if self.state is C2SState.CLOSED:
            return
        was_ready = self.state is C2SState.READY
        self.state = C2SState.CLOSED
        self.services.connections.discard(self)
        if self._inbox:
            self._inbox.clear()
        self._csi = None
        if was_ready and self.host is not None:
            self.services.sessions.remove(self)
            state = self._sm
            if state is not None:
                self.services.resumable.forget(state.id, str(self.jid.bare()), state.handled)
                unacked = state.take_unacked()
                if unacked:
                    log.info("session %s: %d unacknowledged stanzas go elsewhere", self.id, len(unacked))
                    self._spawn(reroute_unacked(
                        host=self.host, router=self.services.router, sessions=self.services.sessions,
                        owner=self, stanzas=unacked,
                    ), "reroute")
            asyncio.get_running_loop().create_task(
                self.host.hooks.fire(events.SESSION_CLOSED, SessionEvent(self)), name=f"closed-{self.id}"
            )


XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


_PRESENCE_TYPES = frozenset(
    {None, "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error"}
)


def _random_resource() -> str:
    return f"parlour-{secrets.token_hex(4)}"


__all__ = ["ClientSession"]
