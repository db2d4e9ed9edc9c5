"""The XMPP client listeners (STARTTLS and direct TLS) of a server, opened on the core's c2s services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable

from appliance.config.model import Config
from appliance.core import c2s
from appliance.net.tcp import ConnectionLimits, XmppTcpProtocol
from appliance.util.fdlimit import DescriptorWatch

log = logging.getLogger(__name__)


class ClientListeners:
    """Every c2s socket of one server; `ports` maps "c2s" / "c2s_direct_tls" to the bound port."""

    def __init__(self, config: Config, services: c2s.C2SServices,
                 tls_context: Callable[[], ssl.SSLContext | None], *,
                 descriptors: DescriptorWatch | None = None) -> None:
        self.config = config
        self.descriptors = descriptors
        self.services = services
        self.tls_context = tls_context
        self.servers: list[asyncio.Server] = []
        self.ports: dict[str, int] = {}

    async def open(self) -> dict[str, int]:
        cfg = self.config.c2s
        limits = ConnectionLimits(
            max_per_ip=self.config.limits.max_connections_per_ip, max_total=self.config.limits.max_connections,
            descriptors=self.descriptors,
        )
        loop = asyncio.get_running_loop()
        wanted = [("c2s", cfg.port, False)]
        if cfg.direct_tls_port:
            wanted.append(("c2s_direct_tls", cfg.direct_tls_port, True))
        for name, port, direct in wanted:
            context = self.tls_context() if direct else None

            def factory(direct: bool = direct) -> XmppTcpProtocol:
                return XmppTcpProtocol(
                    self.services, limits, self.tls_context, direct_tls=direct, session_factory=c2s.ClientSession
                )

            bound = port
            for interface in cfg.interfaces:
                try:
                    server = await loop.create_server(
                        factory, host=interface, port=bound, ssl=context, backlog=4096, reuse_address=True,
                        ssl_handshake_timeout=30 if context else None,
                    )
                except OSError as exc:
                    if interface == "::" and len(cfg.interfaces) > 1:
                        log.info("IPv6 listener on %s unavailable: %s", interface, exc)
                        continue
                    raise
                self.servers.append(server)
                bound = server.sockets[0].getsockname()[1]
            self.ports[name] = bound
            log.info("%s listening on %s port %d", name, ", ".join(cfg.interfaces), bound)
        return dict(self.ports)

    def close(self) -> None:
        """Stop accepting; `wait_closed()` later waits for the sockets to go."""
        for server in self.servers:
            server.close()

    async def wait_closed(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)


__all__ = ["ClientListeners"]
