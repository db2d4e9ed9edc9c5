"""The XMPP listeners of a server: clients (STARTTLS and direct TLS) on the core's c2s services, and
external components (XEP-0114) on its component hub when any component has a secret."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from appliance.config.model import Config
from appliance.core import c2s
from appliance.core.component import ComponentHub, ComponentSession
from appliance.net.openssl_tls import Tls, direct_tls
from appliance.net.tcp import ConnectionLimits, XmppTcpProtocol
from appliance.util.fdlimit import DescriptorWatch

log = logging.getLogger(__name__)


class ClientListeners:
    """Every XMPP socket of one server; `ports` maps "c2s" / "c2s_direct_tls" / "component" to the bound
    port."""

    def __init__(self, config: Config, services: c2s.C2SServices,
                 tls_context: Callable[[], Tls | None], *,
                 direct_tls: Callable[[], Tls | None] | None = None,
                 descriptors: DescriptorWatch | None = None, components: ComponentHub | None = None) -> None:
        self.config = config
        self.descriptors = descriptors
        self.components = components
        self.services = services
        self.tls_context = tls_context  # for STARTTLS
        self.direct_tls = direct_tls or tls_context  # for each direct-TLS connection (XEP-0368)
        self.servers: list[asyncio.Server] = []
        self.ports: dict[str, int] = {}

    async def open(self) -> dict[str, int]:
        cfg = self.config.c2s
        limits = ConnectionLimits(
            max_per_ip=self.config.limits.max_connections_per_ip, max_total=self.config.limits.max_connections,
            descriptors=self.descriptors,
        )
        wanted = [("c2s", cfg.port, False)]
        if cfg.direct_tls_port:
            wanted.append(("c2s_direct_tls", cfg.direct_tls_port, True))
        for name, port, direct in wanted:

            def factory(direct: bool = direct) -> XmppTcpProtocol:
                return XmppTcpProtocol(
                    self.services, limits, self.tls_context, direct_tls=direct, session_factory=c2s.ClientSession
                )

            await self._listen(name, factory, cfg.interfaces, port, self.direct_tls if direct else None)
        hub = self.components
        if hub is not None and self.config.components.secrets:

            def component(_services: c2s.C2SServices, transport: XmppTcpProtocol) -> ComponentSession:
                return ComponentSession(hub, transport)

            def component_factory() -> XmppTcpProtocol:
                return XmppTcpProtocol(self.services, limits, lambda: None, direct_tls=False,
                                       session_factory=component)  # type: ignore[arg-type]

            components = self.config.components
            await self._listen("component", component_factory, components.interfaces, components.port, None)
        return dict(self.ports)

    async def _listen(self, name: str, factory: Callable[[], XmppTcpProtocol], interfaces: tuple[str, ...],
                      port: int, tls: Callable[[], Tls | None] | None) -> None:
        loop = asyncio.get_running_loop()
        bound = port

        def direct() -> asyncio.BaseProtocol:  # TLS is chosen per connection: stapling may start or stop
            return direct_tls(factory(), tls(), timeout=30)  # type: ignore[misc]

        for interface in interfaces:
            try:
                server = await loop.create_server(
                    factory if tls is None else direct, host=interface, port=bound, backlog=4096,
                    reuse_address=True,
                )
            except OSError as exc:
                if interface == "::" and len(interfaces) > 1:
                    log.info("IPv6 listener on %s unavailable: %s", interface, exc)
                    continue
                raise
            self.servers.append(server)
            bound = server.sockets[0].getsockname()[1]
        self.ports[name] = bound
        log.info("%s listening on %s port %d", name, ", ".join(interfaces), bound)

    def close(self) -> None:
        """Stop accepting; `wait_closed()` later waits for the sockets to go."""
        for server in self.servers:
            server.close()

    async def wait_closed(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)


__all__ = ["ClientListeners"]
