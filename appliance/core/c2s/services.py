"""What every client session of a server shares, and the modules that switch session features on."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from appliance.core.accounts import AccountService
from appliance.core.authn import FastTokens
from appliance.core.stream_management import SmRegistry

if TYPE_CHECKING:
    from appliance.config.model import Config
    from appliance.core.api import Host
    from appliance.core.auth_throttle import AuthThrottle
    from appliance.core.c2s.session import ClientSession
    from appliance.core.iq import PendingIqs
    from appliance.core.router import Router
    from appliance.core.sessions import SessionDirectory

SM_MODULE = "stream_management"  # the modules whose presence switches these session features on
CSI_MODULE = "csi"
SASL2_MODULE = "sasl2"


@dataclass(slots=True)
class C2SServices:
    """Everything client sessions share (one instance per server)."""

    config: Config
    hosts: dict[str, Host]
    sessions: SessionDirectory
    router: Router
    accounts: AccountService
    pending: PendingIqs
    auth_throttle: AuthThrottle
    fake_secret: bytes
    connections: set[ClientSession]
    stats: dict[str, int]
    fast: FastTokens | None = None  # FAST token storage (XEP-0484); None: no FAST
    resumable: SmRegistry = field(default_factory=SmRegistry)
    background: set[asyncio.Task[None]] = field(default_factory=set)  # rerouting of unacked stanzas


__all__ = ["CSI_MODULE", "SASL2_MODULE", "SM_MODULE", "C2SServices"]
