"""The web application factory: one aiohttp app with every HTTP route Parlour serves.

Shared objects travel in typed `web.AppKey`s (see keys.py); resources that need closing are
registered in `cleanup_ctx`. Nothing here opens sockets: web/server.py runs the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import WSCloseCode, web

from appliance.certs.acme import http01
from appliance.certs.acme.challenges import ChallengeResponder
from appliance.config.model import Config
from appliance.core.c2s import C2SServices
from appliance.net.tcp import ConnectionLimits
from appliance.services import Services
from appliance.web import bosh, landing, pages, transport_security, webchat, websocket, wellknown
from appliance.web import upload as upload_web
from appliance.web.keys import (
    ADMIN,
    BOSH_SESSIONS,
    CONFIG,
    CONNECTION_LIMITS,
    CONSOLE_SESSIONS,
    SERVICES,
    WEBSOCKETS,
)


def make_app(
    *, config: Config, services: C2SServices, limits: ConnectionLimits | None = None,
    acme: ChallengeResponder | None = None, admin: Services | None = None,
) -> web.Application:
    """Build the application; `limits` counts BOSH and WebSocket sessions per IP (default: from config).

    `acme` adds the ACME HTTP-01 challenge route; `admin` (with console.enabled) the admin console, the
    API, /metrics and the invitation pages.
    """
    if limits is None:
        limits = ConnectionLimits(
            max_per_ip=config.limits.max_connections_per_ip, max_total=config.limits.max_connections
        )
    # aiohttp's own body limit only needs to admit the largest BOSH body we accept (checked in bosh.py).
    app = web.Application(client_max_size=config.limits.max_stanza_size * 2 + 1024,
                          middlewares=[pages.page_middleware])
    transport_security.setup(app)
    app[CONFIG] = config
    app[SERVICES] = services
    app[CONNECTION_LIMITS] = limits
    app[WEBSOCKETS] = set()
    app[BOSH_SESSIONS] = bosh.BoshSessions(config, services, limits)
    app.cleanup_ctx.append(_close_sessions)
    app.on_shutdown.append(_close_websockets)
    websocket.setup(app)
    bosh.setup(app)
    wellknown.setup(app)
    upload_web.setup(app)  # XEP-0363 files (slots come from modules/upload.py)
    pages.static_routes(app)
    if config.http.webchat:
        webchat.setup(app)
    if acme is not None:
        http01.setup(app, acme)
    if admin is not None and config.console.enabled:  # [console]
        _console(app, config, admin)
    landing.setup(app, console=ADMIN in app, host=config.hosts[0].name if config.hosts else "")
    return app


def _console(app: web.Application, config: Config, admin: Services) -> None:
    from appliance.web.admin import (
        api,
        backup,
        certificates,
        console,
        directory,
        federation,
        groups,
        invite,
        metrics,
        rooms,
    )
    from appliance.web.admin.auth import ConsoleSessions

    app[pages.LANGUAGE_KEY] = config.console.language
    app[ADMIN] = admin
    app[CONSOLE_SESSIONS] = ConsoleSessions(
        lifetime=config.console.session_lifetime, failures=config.console.login_failures,
        window=config.limits.auth_window, block=config.limits.auth_block_time,
    )
    console.setup(app)
    api.setup(app)
    rooms.setup(app)
    groups.setup(app)
    directory.setup(app)
    federation.setup(app)
    certificates.setup(app)
    backup.setup(app)
    metrics.setup(app)
    invite.setup(app)


async def _close_websockets(app: web.Application) -> None:
    """Before the runner waits for handlers: close WebSockets whose session did not close them."""
    for transport in list(app[WEBSOCKETS]):
        if not transport.ws.closed:
            await transport.ws.close(code=WSCloseCode.GOING_AWAY, message=b"Server shutdown")


async def _close_sessions(app: web.Application) -> AsyncIterator[None]:
    yield
    app[BOSH_SESSIONS].close_all()


__all__ = ["make_app"]
