"""External components (XEP-0114): the driver of the component stream machine and the routes it owns.

A component connects to the component listener, names its domain and proves the shared secret of
[components] secrets; it then serves that domain: the router hands it every stanza addressed to the
domain or a JID under it (from local users, and from remote users once s2s routes by domain), and
it sends stanzas from its domain to anyone. A second connection for a domain already connected is
refused with `<conflict/>` and the first one stays (XEP-0114 leaves the choice to the server; a
running gateway is not kicked by a misconfigured twin). Connected components are listed in the
disco#items of the hosts whose subdomain they are (of every host when they are nobody's).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from lxml import etree

from appliance.core.events import StanzaEvent
from appliance.xmpp import component as xc
from appliance.xmpp import effects as fx
from appliance.xmpp.errors import StreamError
from appliance.xmpp.machine import COMPONENT, State, StreamMachine
from appliance.xmpp.ns import NS_COMPONENT
from appliance.xmpp.parser import Event, Stanza
from appliance.xmpp.stream import STREAM_CLOSE, stream_header

if TYPE_CHECKING:
    from appliance.config.model import Config
    from appliance.core.api import Host
    from appliance.core.router import Router

log = logging.getLogger(__name__)

MAX_INBOX = 1000
MAX_SEND_BUFFER = 8 * 1024 * 1024  # unread bytes a component may leave before it is disconnected


class ComponentTransport(Protocol):
    """What a component session needs from its connection (net/tcp.XmppTcpProtocol provides it)."""

    peer_ip: str

    def write(self, data: bytes) -> None: ...

    def buffered(self) -> int: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def close(self) -> None: ...


class SecretNames:
    """The configured component domains, read live from the config (a reload adds or removes them)."""

    __slots__ = ("_config",)

    def __init__(self, config: Callable[[], Config]) -> None:
        self._config = config

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._config().components.secret(name) is not None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(name for name, _ in self._config().components.secrets)


class ComponentHub:
    """What all component sessions share: the live config, the router and the hosts to list them on."""

    def __init__(self, config: Config, *, router: Router, hosts: dict[str, Host],
                 handshake_timeout: float | None = None) -> None:
        self.config = config  # replaced on reload: secrets take effect for the next handshake
        self.router = router
        self.hosts = hosts
        self.names = SecretNames(lambda: self.config)
        self.connected: dict[str, ComponentSession] = {}
        self.handshake_timeout = handshake_timeout or config.c2s.handshake_timeout
        self.max_send_buffer = MAX_SEND_BUFFER

    def listed_on(self, domain: str) -> list[Host]:
        """The hosts whose disco#items list `domain`: its parent hosts, or all when it has none."""
        parents = [h for name, h in self.hosts.items() if domain.endswith("." + name)]
        return parents or list(self.hosts.values())

    def close_all(self) -> None:
        for session in list(self.connected.values()):
            session.stream_error(StreamError.system_shutdown("The server is shutting down"))


class ComponentSession:
    """One component connection from stream header to close."""

    __slots__ = ("_closers", "_reading_paused", "_timer", "_worker", "hub", "machine", "transport")

    def __init__(self, hub: ComponentHub, transport: ComponentTransport) -> None:
        self.hub = hub
        self.transport = transport
        self.machine = StreamMachine(COMPONENT, hub.names)
        self._worker: asyncio.Task[None] | None = None
        self._reading_paused = False
        self._closers: list[Callable[[], None]] = []  # undo the route and the disco items
        self._timer = asyncio.get_running_loop().call_later(hub.handshake_timeout, self._handshake_expired)

    def __repr__(self) -> str:
        return f"<ComponentSession {self.machine.host or self.transport.peer_ip} {self.machine.state.value}>"

    @property
    def domain(self) -> str | None:
        return self.machine.host

    # -- intake (what the TCP protocol calls) -----------------------------------------------------

    def receive(self, new_events: list[Event]) -> None:
        if new_events and self.machine.receive(new_events) > MAX_INBOX and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause()
        self._wake()

    def receive_error(self, error: StreamError) -> None:
        self.machine.receive_error(error)
        self._wake()

    def touch(self) -> None:
        """Whitespace keepalives need nothing: components have no idle timeout."""

    def connection_lost(self) -> None:
        self.machine.connection_lost()
        self._flush()

    def stream_error(self, error: StreamError) -> None:
        self.machine.stream_error(error)
        self._flush()

    def _handshake_expired(self) -> None:
        if self.machine.state is not State.READY:
            self.stream_error(StreamError.connection_timeout("No handshake in time"))

    # -- the effect loop -----------------------------------------------------------------------------

    def _wake(self) -> None:
        if self._worker is None and self.machine.backlog:
            self._worker = asyncio.get_running_loop().create_task(self._drain(), name="component-stream")

    async def _drain(self) -> None:
        machine = self.machine
        try:
            while (effect := machine.next_effect()) is not None:
                try:
                    await self._carry_out(effect)
                except Exception as exc:  # one place turns any failure into a stream error
                    self._failed(exc)
                if self._reading_paused and machine.backlog <= MAX_INBOX // 2:
                    self._reading_paused = False
                    self.transport.resume()
        finally:
            self._worker = None

    async def _carry_out(self, effect: fx.Effect) -> None:
        if effect.__class__ is Stanza:
            await self.hub.router.route(effect.element, origin=None)  # type: ignore[union-attr]
            self.machine.stanza_handled()
        elif isinstance(effect, fx.Handshake):
            self._handshake(effect)
        else:
            self._apply(effect)

    def _failed(self, exc: Exception) -> None:
        """A peer's protocol error closes with its condition; our own bug with internal-server-error."""
        if isinstance(exc, StreamError):
            self.stream_error(exc)
            return
        log.error("component %s: internal error", self.machine.host, exc_info=exc)
        self.stream_error(StreamError.internal_server_error())

    def _flush(self) -> None:
        while (effect := self.machine.take_effect()) is not None:
            self._apply(effect)

    def _apply(self, effect: fx.Effect) -> None:
        transport = self.transport
        if isinstance(effect, fx.Write):
            transport.write(effect.data)
        elif isinstance(effect, fx.OpenStream):
            transport.write(stream_header(from_=effect.host, stream_id=effect.stream_id, to=effect.to,
                                          version=effect.version, namespace=NS_COMPONENT))
        elif isinstance(effect, fx.SendStreamError):
            log.info("component %s: stream error %s (%s)", self.machine.host or transport.peer_ip,
                     effect.error.condition, effect.error.text or "")
            transport.write(effect.error.to_bytes())
        elif effect is fx.CLOSE_STREAM:
            transport.write(STREAM_CLOSE)
        elif isinstance(effect, fx.Closed):
            self._closed(effect)
        elif isinstance(effect, fx.Send):
            self.send(effect.element)

    # -- handshake and routes ------------------------------------------------------------------------

    def _handshake(self, effect: fx.Handshake) -> None:
        machine = self.machine
        domain = machine.host
        assert domain is not None
        secret = self.hub.config.components.secret(domain)
        if secret is None or not xc.handshake_matches(effect.digest, machine.stream_id, secret):
            log.warning("component %s from %s: wrong handshake (check [components] secrets)", domain,
                        self.transport.peer_ip)
            machine.handshake_refused(StreamError.not_authorized("The handshake does not match the secret"))
            return
        if domain in self.hub.connected:
            log.warning("component %s from %s: refused, it is connected already", domain, self.transport.peer_ip)
            machine.handshake_refused(StreamError.conflict("This component is connected already"))
            return
        try:
            self._closers.append(self.hub.router.add_service(domain, self._deliver))
        except RuntimeError:
            machine.handshake_refused(StreamError.conflict(f"{domain} is served by this server itself"))
            return
        self.hub.connected[domain] = self
        for host in self.hub.listed_on(domain):
            host.components.add(domain)
            self._closers.append(lambda host=host: host.components.discard(domain))  # type: ignore[misc]
        self._timer.cancel()
        machine.handshake_accepted()
        log.info("component %s connected from %s", domain, self.transport.peer_ip)

    async def _deliver(self, event: StanzaEvent) -> None:
        """The router's service for this domain: hand the stanza to the component."""
        self.send(event.stanza)

    def send(self, element: etree._Element) -> None:
        if self.machine.state is not State.READY:
            return
        self.transport.write(xc.to_component(element))
        if self.transport.buffered() > self.hub.max_send_buffer:
            # A stuck gateway must not grow our memory without bound; it reconnects and goes on.
            log.warning("component %s does not read; disconnecting", self.machine.host)
            asyncio.get_running_loop().call_soon(
                self.stream_error, StreamError.policy_violation("Too much unread data"))

    def _closed(self, effect: fx.Closed) -> None:
        self._timer.cancel()
        domain = self.machine.host
        if domain is not None and self.hub.connected.get(domain) is self:
            del self.hub.connected[domain]
            log.info("component %s disconnected", domain)
        for undo in reversed(self._closers):
            undo()
        self._closers.clear()
        if effect.disconnect:
            self.transport.close()


__all__ = ["ComponentHub", "ComponentSession", "ComponentTransport"]
