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

    __slots__ = ("_limits", "_shaper", "_source")

    def __init__(self, limits: LimitsConfig, now: float) -> None:
        self._limits = limits
        self._source: object = _PREAUTH  # where the shaper's rates come from
        self._shaper = Shaper(_rates_of(limits, limits.preauth_rate, limits.preauth_stanza_rate), now)

    def charge(self, session: object, nbytes: int, stanzas: int, now: float) -> float:
        """Account for what `session`'s connection read; seconds to stop reading (0: keep going)."""
        # Asked on every read; the rates change only with their source (a login, a host's limits
        # replaced by a reload), so they are worked out again only then.
        if getattr(session, "username", None) is None:  # not logged in (or a connection's stand-in)
            source: object = _PREAUTH
        else:
            host = getattr(session, "host", None)
            source = (host.config.limits if host is not None else None) or self._limits
        if source is not self._source:
            self._source = source
            self._shaper.retune(self._rates_from(source))
        return self._shaper.charge(nbytes, stanzas, now)

    def _rates_from(self, source: object) -> Rates:
        limits = self._limits
        if source is _PREAUTH:
            return _rates_of(limits, limits.preauth_rate, limits.preauth_stanza_rate)
        return _rates_of(limits, source.rate, source.stanza_rate)  # type: ignore[attr-defined]


_PREAUTH = object()


def _rates_of(limits: LimitsConfig, rate: int, stanza_rate: int) -> Rates:
    return _rates(rate, stanza_rate, limits.burst, limits.max_stanza_size)


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
