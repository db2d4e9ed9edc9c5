"""Options of the session-level protocols that the client streams run themselves.

Stream management (XEP-0198), client state indication (XEP-0352) and SASL2 (XEP-0388) count or change
every stanza of a stream, so `core/c2s` implements them; the modules of the same names switch them on
for a host and declare these dataclasses as their options ([modules.stream_management], ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.config.options import option
from appliance.config.spec import Bool, Duration, Int

__all__ = ["SESSION_OPTIONS", "CsiOptions", "Sasl2Options", "StreamManagementOptions"]


@dataclass(frozen=True, slots=True)
class StreamManagementOptions:
    """Stream management (XEP-0198): acknowledged delivery and resumption of dropped connections."""

    resume_timeout: float = option(300.0, Duration(0, 86400.0),
        "How long a dropped session waits to be resumed (it stays online meanwhile); then its unacknowledged "
        "messages go to another resource or offline storage. 0 turns resumption off.")
    max_queue: int = option(1000, Int(10, 1_000_000),
        "Unacknowledged stanzas kept per session; a client that falls further behind is disconnected.")
    request_every: int = option(5, Int(1, 10_000),
        "Ask the client for an acknowledgement after this many unacknowledged stanzas (also on every housekeeping "
        "round while any are pending).")


@dataclass(frozen=True, slots=True)
class CsiOptions:
    """Client state indication (XEP-0352): presence updates and chat states wait while a client says it is inactive."""

    max_held: int = option(200, Int(1, 100_000), "Stanzas held back per inactive session before all are sent anyway.")


@dataclass(frozen=True, slots=True)
class Sasl2Options:
    """Extensible SASL profile (XEP-0388) with Bind 2 (XEP-0386) and FAST token login (XEP-0484)."""

    bind2: bool = option(True, Bool(), "Offer resource binding inside the authentication (Bind 2).")
    fast: bool = option(True, Bool(), "Offer FAST tokens for quick reconnection without the password.")
    fast_token_lifetime: float = option(21 * 86400.0, Duration(3600, 365 * 86400.0),
        "How long a FAST token is valid; it is renewed when less than half of this is left.")


SESSION_OPTIONS: dict[str, type] = {
    "stream_management": StreamManagementOptions,
    "csi": CsiOptions,
    "sasl2": Sasl2Options,
}
"""Module name -> its options type, for the session code that asks by module name."""
