"""ACME HTTP-01 over HTTP: the challenge route, and the plain-HTTP listener on port 80.

The route answers ``/.well-known/acme-challenge/{token}`` from the ``ChallengeResponder`` (the web
server adds it to every web listener). The port-80 listener, opened by the server and by `parlour cert
renew`, serves only that route and redirects everything else to HTTPS, so port 80 never carries XMPP
traffic.
"""

from __future__ import annotations

import logging

from aiohttp import web

from appliance.certs.acme.challenges import WELL_KNOWN, ChallengeResponder

__all__ = ["ACME_RESPONDER", "ChallengeListener", "setup"]

log = logging.getLogger(__name__)

ACME_RESPONDER = web.AppKey("acme_responder", ChallengeResponder)


def setup(app: web.Application, responder: ChallengeResponder) -> None:
    """Add the challenge route to ``app``."""
    app[ACME_RESPONDER] = responder
    app.router.add_get(WELL_KNOWN + "{token}", _challenge)


async def _challenge(request: web.Request) -> web.Response:
    answer = request.app[ACME_RESPONDER].answer(request.match_info["token"])
    if answer is None:
        raise web.HTTPNotFound(text="No such ACME challenge\n")
    return web.Response(text=answer, content_type="application/octet-stream")


def redirect_app(responder: ChallengeResponder, https_port: int | None) -> web.Application:
    """The port-80 application: challenges, and a redirect to HTTPS for anything else."""
    app = web.Application()
    setup(app, responder)

    async def to_https(request: web.Request) -> web.Response:
        if https_port is None:
            raise web.HTTPNotFound(text="Nothing here\n")
        host = request.url.host or ""
        port = "" if https_port == 443 else f":{https_port}"
        raise web.HTTPMovedPermanently(f"https://{host}{port}{request.rel_url}")

    app.router.add_route("*", "/{tail:.*}", to_https)
    return app


class ChallengeListener:
    """Plain HTTP on ``port`` for HTTP-01 challenges plus the redirect; ``start()`` returns the bound port."""

    def __init__(self, responder: ChallengeResponder, *, interfaces: tuple[str, ...], port: int,
                 https_port: int | None) -> None:
        self._app = redirect_app(responder, https_port)
        self._interfaces = interfaces
        self._port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> int | None:
        """Listen, or log why not (a port below 1024 needs privileges) and return None."""
        runner = self._runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await runner.setup()
        bound = None
        for interface in self._interfaces:
            site = web.TCPSite(runner, interface, self._port, reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                if interface == "::" and len(self._interfaces) > 1:
                    continue
                log.warning(
                    "ACME: cannot listen on %s port %d (%s). The certificate authority checks port %d: run "
                    "Parlour with the right to bind it (CAP_NET_BIND_SERVICE), free the port, or set "
                    "acme.webroot for a reverse proxy.", interface, self._port, exc.strerror, self._port)
                continue
            bound = self._port
        if bound is not None:
            log.info("ACME challenge listener on %s port %d", ", ".join(self._interfaces), bound)
        return bound

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
