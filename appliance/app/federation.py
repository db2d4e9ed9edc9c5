"""Federation wiring: the resolver, the network side, the Federation manager and the s2s listener."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable

from appliance.certs.store import CertificateStore
from appliance.config.model import Config
from appliance.core.s2s import Federation
from appliance.core.s2s.domains import LocalDomains
from appliance.core.server import XmppCore
from appliance.net.dns import S2SResolver, parse_static
from appliance.net.s2s import S2SNetwork
from appliance.util.tasks import TaskSupervisor

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 30.0


class FederationService:
    """The s2s side of one server: `await start()` (returns the bound port), then `await stop()`."""

    def __init__(self, config: Config, core: XmppCore, certs: CertificateStore, tasks: TaskSupervisor, *,
                 secret: bytes | None = None) -> None:
        cfg = config.s2s
        self.core = core
        self.tasks = tasks
        resolver = S2SResolver(nameservers=cfg.nameservers, static=parse_static(cfg.static_routes),
                               timeout=cfg.dns_timeout)
        self.network = S2SNetwork(
            resolver, server_context=certs.current_context, certificate_files=certs.files_for,
            ca_bundle=cfg.ca_bundle, connect_timeout=cfg.connect_timeout, tls_timeout=cfg.tls_timeout,
            current_ca_bundle=lambda: core.config.s2s.ca_bundle,
        )
        router = core.router
        self.federation = Federation(
            config=lambda: core.config.s2s, hosts=LocalDomains(router.hosts, router.services), network=self.network,
            deliver=lambda element: router.route(element, origin=None), bounce=router.bounce,
            # XEP-0185: a fresh dialback secret per process is enough for one server; a cluster's nodes share
            # one, since the peer's verification may reach another node than the one it talks to
            secret=secret or os.urandom(32),
            spawn=tasks.spawn, policy=core.federation, stats=core.stats,
        )
        self.servers: list[asyncio.Server] = []
        self._stop_sweep = None

    async def start(self) -> dict[str, int]:
        """Open the listeners (STARTTLS on s2s.port, direct TLS on s2s.direct_tls_port unless 0) and
        attach to the router; returns the bound ports as "s2s" and "s2s_direct_tls"."""
        cfg = self.core.config.s2s
        ports = {"s2s": await self._listen(cfg.port, self.federation.accept)}
        if cfg.direct_tls_port:
            # XEP-0368: TLS from the first byte (made by the federation: net/s2s_tls.py), ALPN "xmpp-server".
            ports["s2s_direct_tls"] = await self._listen(cfg.direct_tls_port, self._accept_direct_tls)
        self.core.router.attach_remote(self.federation)
        self._stop_sweep = self.tasks.every(SWEEP_INTERVAL, self._sweep, "s2s-sweep")
        return ports

    async def _accept_direct_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.federation.accept(reader, writer, direct_tls=True)

    async def _listen(self, port: int, accept: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                                        Awaitable[None]]) -> int:
        cfg = self.core.config.s2s
        interfaces = cfg.interfaces or self.core.config.c2s.interfaces
        bound = port
        for interface in interfaces:
            try:
                server = await asyncio.start_server(accept, host=interface, port=bound, reuse_address=True,
                                                    limit=2**20)
            except OSError as exc:
                if interface == "::" and len(interfaces) > 1:
                    log.info("IPv6 s2s listener on %s unavailable: %s", interface, exc)
                    continue
                raise
            self.servers.append(server)
            bound = server.sockets[0].getsockname()[1]
        direct = " (direct TLS)" if accept == self._accept_direct_tls else ""
        log.info("s2s%s listening on %s port %d", direct, ", ".join(interfaces), bound)
        return bound

    async def _sweep(self) -> None:
        self.federation.sweep()

    async def stop(self) -> None:
        self.core.router.attach_remote(None)
        if self._stop_sweep is not None:
            self._stop_sweep()
        for server in self.servers:
            server.close()
        await self.federation.close()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
