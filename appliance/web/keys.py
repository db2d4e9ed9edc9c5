"""Typed keys for the objects the web application shares between its handlers (aiohttp `web.AppKey`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from appliance.config.model import Config
from appliance.core.c2s import C2SServices
from appliance.net.tcp import ConnectionLimits

if TYPE_CHECKING:
    from appliance.services import Services
    from appliance.web.admin.auth import ConsoleSessions
    from appliance.web.bosh import BoshSessions
    from appliance.web.websocket import WebSocketTransport

CONFIG = web.AppKey("config", Config)
SERVICES = web.AppKey("services", C2SServices)
CONNECTION_LIMITS = web.AppKey("connection_limits", ConnectionLimits)
BOSH_SESSIONS: web.AppKey[BoshSessions] = web.AppKey("bosh_sessions")
WEBSOCKETS: web.AppKey[set[WebSocketTransport]] = web.AppKey("websockets")

ADMIN: web.AppKey[Services] = web.AppKey("admin")  # [console] the services the console and API call
CONSOLE_SESSIONS: web.AppKey[ConsoleSessions] = web.AppKey("console_sessions")  # [console]

__all__ = ["ADMIN", "BOSH_SESSIONS", "CONFIG", "CONNECTION_LIMITS", "CONSOLE_SESSIONS", "SERVICES", "WEBSOCKETS"]
