"""The traffic-shaping policy of client connections: which rates apply, and when.

Before authentication a connection gets the strict `limits.preauth_*` rates; once logged in, those of
its host (`[hosts."name".limits]` over `[limits]`). Every transport (TCP, WebSocket, BOSH) charges what
it read here and stops reading for as long as it is told, so a client that sends too much is slowed
down by its own connection's flow control and the server holds at most a burst of its data.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from appliance.util.shaper import Rates, Shaper

if TYPE_CHECKING:
    from appliance.config.model import LimitsConfig


class InputShaping:
    """The shaper of one client connection."""

    __slots__ = ("_limits", "_shaper")

    def __init__(self, limits: LimitsConfig, now: float) -> None:
        self._limits = limits
        self._shaper = Shaper(_rates_of(limits, limits.preauth_rate, limits.preauth_stanza_rate), now)

    def charge(self, session: object, nbytes: int, stanzas: int, now: float) -> float:
        """Account for what `session`'s connection read; seconds to stop reading (0: keep going)."""
        self._shaper.retune(self._rates_for(session))
        return self._shaper.charge(nbytes, stanzas, now)

    def _rates_for(self, session: object) -> Rates:
        limits = self._limits
        if getattr(session, "username", None) is None:  # not logged in (or a connection's stand-in)
            return _rates_of(limits, limits.preauth_rate, limits.preauth_stanza_rate)
        host = getattr(session, "host", None)
        shaping = host.config.limits if host is not None else None
        if shaping is None:
            return _rates_of(limits, limits.rate, limits.stanza_rate)
        return _rates_of(limits, shaping.rate, shaping.stanza_rate)


def _rates_of(limits: LimitsConfig, rate: int, stanza_rate: int) -> Rates:
    return _rates(rate, stanza_rate, limits.burst, limits.max_stanza_size)


# Asked on every read: keyed by the numbers it uses (hashing the whole LimitsConfig dataclass, a Python
# function over all its fields, cost more than the rest of the shaping).
@functools.lru_cache(maxsize=64)
def _rates(rate: int, stanza_rate: int, burst: int, max_stanza_size: int) -> Rates:
    # The byte burst always lets one stanza of the largest allowed size through at once.
    return Rates(
        bytes_per_second=rate,
        byte_burst=max(rate * burst, max_stanza_size),
        stanzas_per_second=stanza_rate,
        stanza_burst=max(stanza_rate * burst, 1),
    )


__all__ = ["InputShaping"]
