"""Traffic shaping of one connection: token buckets for bytes and stanzas per second.

Like ejabberd's shapers and Prosody's mod_limits, a connection that sends faster than its rate is not
cut off: its reader is paused until the buckets have refilled, so TCP's own flow control pushes back
on the sender and the server never holds more than a burst of its data. The clock is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rates:
    """Sustained rates and the bursts allowed above them."""

    bytes_per_second: float
    byte_burst: float
    stanzas_per_second: float
    stanza_burst: float


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; taking more than is there leaves a debt."""

    __slots__ = ("burst", "level", "rate", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.level = burst
        self.stamp = now

    def take(self, amount: float, now: float) -> float:
        """Spend `amount`; the seconds until the bucket is out of debt again (0: none)."""
        level = self.level + (now - self.stamp) * self.rate
        if level > self.burst:  # (not min(): this runs twice per read)
            level = self.burst
        self.stamp = now
        self.level = level = level - amount
        return -level / self.rate if level < 0 else 0.0

    def retune(self, rate: float, burst: float) -> None:
        """New rate and burst; what is saved up shrinks to the new burst, a debt stays."""
        self.rate = rate
        self.burst = burst
        self.level = min(self.level, burst)


class Shaper:
    """The bytes and stanza buckets of one connection."""

    __slots__ = ("_bytes", "_stanzas", "rates")

    def __init__(self, rates: Rates, now: float) -> None:
        self.rates = rates
        self._bytes = TokenBucket(rates.bytes_per_second, rates.byte_burst, now)
        self._stanzas = TokenBucket(rates.stanzas_per_second, rates.stanza_burst, now)

    def charge(self, nbytes: int, stanzas: int, now: float) -> float:
        """Account for data received; the seconds to stop reading before more is taken (0: none)."""
        for_bytes = self._bytes.take(nbytes, now)
        for_stanzas = self._stanzas.take(stanzas, now)
        return for_bytes if for_bytes > for_stanzas else for_stanzas

    def retune(self, rates: Rates) -> None:
        if rates != self.rates:
            self.rates = rates
            self._bytes.retune(rates.bytes_per_second, rates.byte_burst)
            self._stanzas.retune(rates.stanzas_per_second, rates.stanza_burst)


__all__ = ["Rates", "Shaper", "TokenBucket"]
