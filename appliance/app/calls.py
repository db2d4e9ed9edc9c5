"""The built-in STUN/TURN server ([turn]) for calls: its secret, its relay address and its listeners, and
what external service discovery (XEP-0215) is told about it."""

from __future__ import annotations

import base64
import logging
import ssl
from collections.abc import Callable

from appliance.config.model import Config, TurnConfig
from appliance.core.api import BuiltinTurn
from appliance.net.interfaces import lan_addresses
from appliance.turn.server import TurnServer, TurnSettings
from appliance.util.files import secret_file

log = logging.getLogger(__name__)


def turn_secret(config: Config) -> str:
    """[turn] secret, or the one generated into <state_dir>/turn.secret on first start."""
    if config.turn.secret:
        return config.turn.secret
    return base64.b64encode(secret_file(config.server.state_dir / "turn.secret")).decode("ascii")


def relay_address(turn: TurnConfig) -> str:
    """Where relays are opened: the configured address, or this machine's first LAN address."""
    return turn.relay_address or next(iter(lan_addresses()), "127.0.0.1")


def turn_settings(config: Config, secret: str) -> TurnSettings:
    turn = config.turn
    return TurnSettings(
        secret=secret, realm=config.hosts[0].name, relay_ip=relay_address(turn), listen=turn.interfaces,
        port=turn.port, tls_port=turn.tls_port, min_port=turn.min_port, max_port=turn.max_port,
        max_lifetime=turn.max_lifetime, user_quota=turn.user_quota, total_quota=turn.total_quota,
        denied_peers=turn.denied_peers, external_ip=turn.external_address,
    )


class CallRelay:
    """The TURN server of this process: `await start()` returns its ports; `announced` is what XEP-0215
    offers clients."""

    def __init__(self, config: Config, tls_context: Callable[[], ssl.SSLContext | None]) -> None:
        self.config = config
        self.secret = turn_secret(config)
        self.server = TurnServer(turn_settings(config, self.secret), tls_context=tls_context)

    async def start(self) -> dict[str, int]:
        """Open the listeners; a port already taken is logged and leaves calls off, not the whole server."""
        try:
            return await self.server.start()
        except OSError as exc:
            log.error("The STUN/TURN server cannot listen on port %d (%s): calls relay through this server "
                      "only once [turn] port is free or changed", self.config.turn.port, exc)
            await self.server.stop()
            return {}

    @property
    def running(self) -> bool:
        return "turn_udp" in self.server.ports

    @property
    def announced(self) -> BuiltinTurn:
        ports = self.server.ports
        return BuiltinTurn(self.secret, port=ports["turn_udp"], tls_port=ports.get("turn_tls", 0),
                           host=self.config.turn.host)

    async def stop(self) -> None:
        await self.server.stop()
