"""Runs the web application beside the XMPP listeners (AppRunner + TCPSite, never run_app)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from appliance.certs.acme.challenges import ChallengeResponder
from appliance.config.model import Config
from appliance.core.c2s import C2SServices
from appliance.net.openssl_tls import Tls, direct_tls
from appliance.services import Services
from appliance.web.app import make_app
from appliance.web.keys import BOSH_SESSIONS
from appliance.web.transport_security import HTTPS

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 3.0  # seconds the runner waits for handlers after sessions were told to close


class WebServer:
    """The HTTP and HTTPS listeners of one server: `await start()` returns the bound ports."""

    def __init__(
        self, *, config: Config, services: C2SServices, tls_context: Callable[[], Tls | None],
        acme: ChallengeResponder | None = None, admin: Services | None = None,
    ) -> None:
        self.config = config
        self.acme = acme
        self.admin = admin
        self.services = services
        self._tls_context = tls_context
        self._runner: web.AppRunner | None = None
        self.ports: dict[str, int] = {}

    async def start(self) -> dict[str, int]:
        """Listen on http.port (and http.tls_port for HTTPS) on every configured interface."""
        app = make_app(config=self.config, services=self.services, acme=self.acme, admin=self.admin)
        runner = self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        http = self.config.http
        self.ports["http"] = await self._listen("http", http.port, None)
        if http.https:
            if self._tls_context() is None:
                log.warning("HTTPS is off: no certificate yet (http.https = true needs one)")
            else:
                self.ports["https"] = await self._listen("https", http.tls_port, self._tls_context)
                app[HTTPS].port = self.ports["https"]  # from now on the console is sent to HTTPS
        return dict(self.ports)

    async def _listen(self, name: str, port: int, tls: Callable[[], Tls | None] | None) -> int:
        assert self._runner is not None
        interfaces = self.config.http.interfaces or self.config.c2s.interfaces
        bound = port
        for interface in interfaces:
            before = set(map(_port_of, self._runner.addresses))
            site = (web.TCPSite(self._runner, interface, bound, backlog=1024, reuse_address=True) if tls is None
                    else _TlsSite(self._runner, interface, bound, tls))
            try:
                await site.start()
            except OSError as exc:
                if interface == "::" and len(interfaces) > 1:
                    log.info("IPv6 %s listener on %s unavailable: %s", name, interface, exc)
                    continue
                raise
            if bound == 0:
                new = set(map(_port_of, self._runner.addresses)) - before
                bound = new.pop() if new else 0
        log.info("%s listening on %s port %d", name, ", ".join(interfaces), bound)
        return bound

    async def stop(self) -> None:
        """End BOSH sessions and WebSockets, then close the listeners."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        if runner.app is not None:
            runner.app[BOSH_SESSIONS].close_all()
        await runner.cleanup()


class _TlsSite(web.TCPSite):
    """An HTTPS site whose TLS is chosen per connection (net/openssl_tls.direct_tls): pyOpenSSL while an OCSP
    response is stapled, else `ssl`, like the direct-TLS XMPP listener."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, tls: Callable[[], Tls | None]) -> None:
        super().__init__(runner, host, port, backlog=1024, reuse_address=True)
        self._tls = tls

    @property
    def name(self) -> str:
        return super().name.replace("http://", "https://", 1)

    async def start(self) -> None:
        await web.BaseSite.start(self)
        handler = self._runner.server
        assert handler is not None
        self._server = await asyncio.get_running_loop().create_server(
            lambda: direct_tls(handler(), self._tls(), timeout=30), self._host, self._port, backlog=self._backlog,
            reuse_address=self._reuse_address,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port


def _port_of(address: object) -> int:
    return address[1] if isinstance(address, tuple) else 0  # type: ignore[return-value]


__all__ = ["WebServer"]
