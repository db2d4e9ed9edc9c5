"""Runs the web application beside the XMPP listeners (AppRunner + TCPSite, never run_app)."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

from aiohttp import web

from appliance.certs.acme.challenges import ChallengeResponder
from appliance.config.model import Config
from appliance.core.c2s import C2SServices
from appliance.services import Services
from appliance.web.app import make_app
from appliance.web.keys import BOSH_SESSIONS
from appliance.web.transport_security import HTTPS

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 3.0  # seconds the runner waits for handlers after sessions were told to close


class WebServer:
    """The HTTP and HTTPS listeners of one server: `await start()` returns the bound ports."""

    def __init__(
        self, *, config: Config, services: C2SServices, tls_context: Callable[[], ssl.SSLContext | None],
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
            context = self._tls_context()
            if context is None:
                log.warning("HTTPS is off: no certificate yet (http.https = true needs one)")
            else:
                self.ports["https"] = await self._listen("https", http.tls_port, context)
                app[HTTPS].port = self.ports["https"]  # from now on the console is sent to HTTPS
        return dict(self.ports)

    async def _listen(self, name: str, port: int, context: ssl.SSLContext | None) -> int:
        assert self._runner is not None
        interfaces = self.config.http.interfaces or self.config.c2s.interfaces
        bound = port
        for interface in interfaces:
            before = set(map(_port_of, self._runner.addresses))
            site = web.TCPSite(self._runner, interface, bound, ssl_context=context, backlog=1024,
                               reuse_address=True)
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


def _port_of(address: object) -> int:
    return address[1] if isinstance(address, tuple) else 0  # type: ignore[return-value]


__all__ = ["WebServer"]
