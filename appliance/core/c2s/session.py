"""A client session: the driver of one stream machine (`xmpp.machine`), whatever the transport.

The machine decides (state, negotiation, stream-management counters); the session carries out its
effects: writes through the transport, routing, the SASL lookups, TLS, binding in the session
directory, hooks. Output to the client (stream management's queue, client state indication's hold)
and the end of a session (hibernation, rerouting unacknowledged stanzas) live here too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from lxml import etree

from appliance.core import events
from appliance.core.c2s import authentication, features, resumption, sasl2
from appliance.core.c2s.services import CSI_MODULE, SM_MODULE, C2SServices
from appliance.core.c2s.transport import DETACHED, Orphan, Transport
from appliance.core.csi import CsiQueue
from appliance.core.events import PushEvent, SessionEvent
from appliance.core.session_options import SESSION_OPTIONS
from appliance.core.stream_management import reroute_unacked
from appliance.xmpp import effects as fx
from appliance.xmpp import sm
from appliance.xmpp import stream as xs
from appliance.xmpp.errors import StanzaError, StreamError
from appliance.xmpp.jid import JID, JIDError
from appliance.xmpp.machine import C2S, StreamMachine
from appliance.xmpp.ns import NS_CLIENT, NS_PING
from appliance.xmpp.parser import Event, Stanza
from appliance.xmpp.sasl import SaslFailure
from appliance.xmpp.stream import C2SState

if TYPE_CHECKING:
    from appliance.core.api import Host
    from appliance.core.authn import SaslExchange

log = logging.getLogger("appliance.core.c2s")

MAX_SEND_BUFFER = 8 * 1024 * 1024
MAX_INBOX = 1000
_ADVANCING: Any = object()  # the session's worker while wake() carries out effects itself


class ClientSession:
    """One client stream from connection to close."""

    __slots__ = (
        "__weakref__",
        "_csi",
        "_loop",
        "_reading_paused",
        "_worker",
        "available",
        "client",
        "directed",
        "exchange",
        "hibernated_at",
        "host",
        "interested",
        "last_rx",
        "machine",
        "ping_sent",
        "presence",
        "priority",
        "services",
        "started",
        "transport",
    )

    def __init__(self, services: C2SServices, transport: Transport) -> None:
        self.services = services
        self.transport = transport
        self.machine = StreamMachine(C2S, services.hosts)
        self.host: Host | None = None
        self.available = False
        self.client = ""  # the client software, as SASL2's user-agent or the caps node names it
        self.priority = 0
        self.presence: etree._Element | None = None
        self.interested = False
        self.directed: set[JID] = set()
        self.started = self.last_rx = time.monotonic()
        self.ping_sent = 0.0
        self.exchange: SaslExchange | None = None  # the SASL exchange running (authentication.py)
        self.hibernated_at = 0.0  # when the connection went away from a resumable session
        self._worker: asyncio.Task[None] | None = None
        # Sessions are made by their transport inside the loop; kept because on Python 3.11 every
        # asyncio.get_running_loop() is a getpid() system call, and wake() runs once per read.
        self._loop = asyncio.get_running_loop()
        self._reading_paused = False
        self._csi: CsiQueue | None = None  # only while the client is inactive (XEP-0352)
        services.connections.add(self)

    def __repr__(self) -> str:
        return f"<ClientSession {self.id} {self.jid or self.transport.peer_ip} {self.state.value}>"

    # -- what the machine knows, for the rest of the server -------------------------------------------

    @property
    def state(self) -> C2SState:
        return self.machine.state

    @property
    def id(self) -> str:
        return self.machine.stream_id

    @property
    def jid(self) -> JID:
        return self.machine.jid  # type: ignore[return-value]  # None only before binding

    @property
    def username(self) -> str | None:
        return self.machine.username

    @property
    def user_agent(self) -> str | None:
        return self.machine.user_agent

    @property
    def sm(self) -> sm.StreamManagement | None:
        """Stream management's counters and queue, once the client enabled it (XEP-0198)."""
        return self.machine.sm

    # -- intake ---------------------------------------------------------------------------------------

    def receive(self, new_events: list[Event]) -> None:
        """Queue parsed events; the worker hands them to the machine in order."""
        self.last_rx = time.monotonic()
        self.ping_sent = 0.0
        if not new_events:
            return
        if self.machine.receive(new_events) > MAX_INBOX and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause()
        self.wake()

    def receive_error(self, error: StreamError) -> None:
        """The parser rejected the input: close after the events already queued."""
        self.touch()
        self.machine.receive_error(error)
        self.wake()

    def touch(self) -> None:
        """Bytes arrived (even a whitespace keepalive): the peer is alive."""
        self.last_rx = time.monotonic()
        self.ping_sent = 0.0

    def wake(self) -> None:
        """Carry out what the input asks at once, in the caller's stack (the read that brought it): most
        stanzas are routed without waiting. A worker task takes over at the first effect that has to
        wait, and exists only while there is such work."""
        if self._worker is None and self.machine.backlog:
            self._worker = _ADVANCING  # a wake() from inside (a stanza to ourselves) leaves it to this loop
            waiting = None
            try:
                waiting = self._advance()
            finally:
                self._worker = None if waiting is None else self._loop.create_task(
                    self._drain(waiting), name=f"c2s-{self.machine.stream_id}"
                )

    def _advance(self) -> Awaitable[Any] | None:
        """Carry out the machine's effects until there are none (None) or one has to wait (what is left
        of it, unstarted, for the worker to await before it goes on)."""
        machine = self.machine
        route_now = self.services.router.route_now
        stats = self.services.stats
        while True:
            try:
                effect = machine.next_effect()
                if effect is None:
                    return None
                if effect.__class__ is Stanza:  # the hot path: route, then count it as handled
                    element = effect.element  # type: ignore[union-attr]  # `is` spares an isinstance
                    stats["stanzas_in"] = stats.get("stanzas_in", 0) + 1
                    if element.tag == xs.MESSAGE:  # for the console's "messages today"
                        stats["messages_in"] = stats.get("messages_in", 0) + 1
                    routing = route_now(element, origin=self)
                    if routing is not None:
                        return self._finish_stanza(routing)
                    settling = self._settling()
                    if settling is not None:
                        return self._finish_stanza(None, settling)
                    machine.stanza_handled()
                elif not self._apply(effect):
                    return self._carry_out(effect)
            except Exception as exc:
                self._failed(exc)
            self._check_intake()

    def _settling(self) -> Awaitable[None] | None:
        """In a cluster, what went to other nodes is queued durably before the stanza counts as handled."""
        link = self.services.sessions.link
        return link.after_stanza(self) if link is not None else None

    async def _finish_stanza(self, routing: Awaitable[Any] | None, settling: Awaitable[None] | None = None) -> None:
        """The rest of a stanza's routing, then (in a cluster) its settling; only then is it handled."""
        if routing is not None:
            await routing
            settling = self._settling()
        if settling is not None:
            await settling
        self.machine.stanza_handled()

    async def _drain(self, waiting: Awaitable[Any]) -> None:
        """The worker: finish the effect that had to wait, then go on with the others."""
        try:
            while waiting is not None:
                try:
                    await waiting
                except Exception as exc:
                    self._failed(exc)
                self._check_intake()
                waiting = self._advance()
        finally:
            self._worker = None

    def _failed(self, exc: Exception) -> None:
        """An effect failed (called in its except block): a stream error ends the stream with it; anything
        else is a bug, logged with its traceback, and ends the stream with internal-server-error."""
        if not isinstance(exc, StreamError):
            log.exception("session %s: internal error", self.id)
            exc = StreamError.internal_server_error()
        self.stream_error(exc)

    def _check_intake(self) -> None:
        """Read again once the backlog that paused reading has halved."""
        if self._reading_paused and self.machine.backlog <= MAX_INBOX // 2:
            self._reading_paused = False
            self.transport.resume()

    # -- effects --------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Carry out the effects already decided (after a call into the machine from outside the worker)."""
        machine = self.machine
        while (effect := machine.take_effect()) is not None:
            self._apply(effect)  # async ones can only be left over from a closed stream: moot

    def _apply(self, effect: fx.Effect) -> bool:
        """Carry out a sync effect; False for an async one."""
        transport = self.transport
        if isinstance(effect, fx.Write):
            transport.write(effect.data)
        elif isinstance(effect, fx.Send):
            self.send(effect.element)
        elif isinstance(effect, fx.OpenStream):
            transport.open_stream(effect.host, effect.stream_id, effect.to, effect.version)
        elif isinstance(effect, fx.SendStreamError):
            error = effect.error
            log.info("session %s: stream error %s (%s)", self.id, error.condition, error.text or "")
            transport.write_stream_error(error)
        elif isinstance(effect, fx.Closed):
            self._closed(effect)
        elif effect is fx.CLOSE_STREAM:
            transport.close_stream()
        elif effect is fx.RESTART:
            transport.reset_parser()
        elif effect is fx.BOUND:
            self.announce_bound()
        elif effect is fx.SM_ENABLED:
            resumption.register(self)
        elif isinstance(effect, fx.ClientState):
            self.set_client_state(effect.active)
        elif isinstance(effect, fx.IqResponse):
            self.services.pending.resolve(effect.element)
        elif isinstance(effect, fx.Bind):
            self._bind(effect)
        else:
            return False
        return True

    async def _carry_out(self, effect: fx.Effect) -> None:
        machine = self.machine
        if effect is fx.FEATURES:
            self.host = self.services.hosts.get(machine.host or "")
            if self.host is None:
                raise StreamError.host_gone("This host is no longer served here")
            machine.features(await features.offer(self))
        elif effect is fx.START_TLS:
            self.transport.reset_parser()
            await self.transport.start_tls()
        elif isinstance(effect, fx.Authenticate | fx.SaslResponse):
            await authentication.run(self, effect)
        elif isinstance(effect, fx.Sasl2Success):
            await sasl2.succeed(self, effect)
        elif isinstance(effect, fx.PreauthIq):
            await self._preauth_iq(effect.element)
        elif isinstance(effect, fx.Resume):
            resumption.resume(self, effect.element)
        else:
            raise TypeError(f"unknown effect {effect!r}")

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
        return self.host.config.modules.of(SESSION_OPTIONS[name])

    def advertised_bindings(self) -> list[str] | None:
        """Channel-binding types announced with XEP-0440 (None: not announced), best first."""
        return features.advertised_bindings(self)

    # -- SASL: the exchange (authn.SaslExchange) asks these --------------------------------------------

    def account_jid(self, username: str) -> JID:
        """The account a SASL user name means on this host (unknown syntax: not-authorized)."""
        assert self.host is not None
        try:
            return JID.make(username, self.host.name, None)
        except JIDError:
            raise SaslFailure("not-authorized") from None

    # -- pre-auth IQs and resource binding (RFC 6120 §7) ----------------------------------------------

    async def _preauth_iq(self, element: etree._Element) -> None:
        """Before authentication only registered pre-auth handlers (in-band registration) answer."""
        assert self.host is not None
        payload = element[0] if len(element) == 1 else None
        handler = self.host.preauth_iq.get(payload.tag) if payload is not None else None
        if handler is None:
            self.machine.reply_error(element, StanzaError.service_unavailable())
            return
        try:
            result = await handler(element, self)
        except StanzaError as err:
            self.machine.reply_error(element, err)
            return
        reply = etree.Element(xs.IQ, nsmap={None: NS_CLIENT})
        reply.set("type", "result")
        reply.set("id", element.get("id", ""))
        if result is not None:
            reply.append(result)
        self.send(reply)

    def _bind(self, effect: fx.Bind) -> None:
        error = self.bind_jid(effect.jid, replace=self.services.config.c2s.resource_conflict == "replace",
                              iq=effect.iq)
        if error is not None:
            self.machine.bind_failed(effect.iq, error)

    def bind_jid(self, jid: JID, *, replace: bool, iq: etree._Element | None = None) -> StanzaError | None:
        """Take `jid` for this session (the one place that enforces conflicts and the resource limit);
        `iq` is the RFC 6120 bind request, None for Bind 2."""
        directory = self.services.sessions
        existing = directory.get(jid)
        if existing is not None:
            if not replace:
                return StanzaError.conflict("That resource is in use")
            existing.close("conflict", "Replaced by a new connection")
        elif directory.count_for(jid) >= self.services.config.c2s.max_resources:
            return StanzaError.resource_constraint("Too many resources bound to this account")
        self.machine.bound(jid, iq)
        if self.machine.state is C2SState.READY:  # else the stream closed while SASL2 was being answered
            directory.add(self)
        return None

    def announce_bound(self) -> None:
        assert self.host is not None
        log.info("session %s: bound %s", self.id, self.jid)
        asyncio.get_running_loop().create_task(
            self.host.hooks.fire(events.SESSION_BOUND, SessionEvent(self)), name=f"bound-{self.id}"
        )

    def set_client_state(self, active: bool) -> None:
        """XEP-0352: inactive holds what can wait; active sends it."""
        if not active:
            if self._csi is None:
                self._csi = CsiQueue(self.module_options(CSI_MODULE).max_held)
            return
        csi, self._csi = self._csi, None
        if csi is not None:
            for data in csi.release():
                self.emit(data)

    # -- output ---------------------------------------------------------------------------------------

    def send(self, element: etree._Element) -> None:
        """Serialize and write one stanza; a reader too slow to keep up is disconnected."""
        if self.machine.state is C2SState.CLOSED:
            return
        self.send_bytes(etree.tostring(element), element)

    def send_bytes(self, data: bytes, element: etree._Element | None = None) -> None:
        """Write one serialized stanza (`element`, when the caller has it, spares a parse)."""
        if self.machine.state is C2SState.CLOSED:
            return
        csi = self._csi
        if csi is not None:
            if csi.hold(data, element):
                return
            for held in csi.release():
                self.emit(held)
        self.emit(data, element)

    def emit(self, data: bytes, element: etree._Element | None = None) -> None:
        """Count and write one stanza past client state indication (stream management keeps a copy)."""
        stats = self.services.stats
        stats["stanzas_out"] = stats.get("stanzas_out", 0) + 1
        state = self.machine.sm
        if state is None:
            self.transport.write(data)
        else:
            state.outbound(data)
            if state.unacked > state.max_queue or state.queued_bytes > MAX_SEND_BUFFER:
                log.warning("session %s: %d stanzas (%d bytes) unacknowledged; closing", self.id, state.unacked,
                            state.queued_bytes)
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

    def release_held(self) -> None:
        """A new stream starts active (XEP-0352): send what client state indication held back."""
        self.set_client_state(True)

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

    # -- closing --------------------------------------------------------------------------------------

    def stream_error(self, error: StreamError) -> None:
        """Send a stream error and close (RFC 6120 §4.9)."""
        self.machine.stream_error(error)
        self.flush()

    def close(self, condition: str | None = None, text: str | None = None) -> None:
        """Close this session, with a stream error condition if given (used by other code)."""
        if condition:
            self.stream_error(StreamError(condition, text))
        else:
            self.close_stream()

    def close_stream(self) -> None:
        self.machine.close()
        self.flush()

    def connection_lost(self) -> None:
        """The transport is gone (closed by either side): hibernate if resumable, else end."""
        if self.hibernated_at:
            return
        if self.machine.connection_lost():
            self._hibernate()
        else:
            self.flush()

    def drop(self) -> None:
        """The connection is dead (no answer in time): close it without a word, then as connection_lost."""
        self.transport.close()
        self.connection_lost()

    def finish(self) -> None:
        """End for good without a word (a resumption window ran out)."""
        self.machine.finish()
        self.flush()

    def _hibernate(self) -> None:
        transport = self.transport
        transport.session = Orphan(self.id)  # a late callback from it must not touch us
        self.transport = DETACHED
        self.hibernated_at = time.monotonic()
        self.ping_sent = 0.0
        log.info("session %s: %s lost its connection; resumable for %d s", self.id, self.jid,
                 int(self.module_options(SM_MODULE).resume_timeout))

    def _closed(self, effect: fx.Closed) -> None:
        """The stream ended: leave the directories, hand unacknowledged stanzas on, tell the modules."""
        self.services.connections.discard(self)
        self._csi = None
        self.exchange = None
        if effect.was_ready and self.host is not None:
            self.services.sessions.remove(self)
            state = self.machine.sm
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
        if effect.disconnect:
            self.transport.close()


__all__ = ["ClientSession"]
