"""Failure counters with a sliding window and a temporary block (used for authentication)."""

from __future__ import annotations

from collections import deque


class FailureTracker:
    """Counts failures per key; `limit` failures within `window` seconds block the key for `block`."""

    __slots__ = ("_block", "_blocked_until", "_failures", "_limit", "_window")

    def __init__(self, *, limit: int, window: float, block: float, max_keys: int = 100_000) -> None:
        self._limit = limit
        self._window = window
        self._block = block
        self._failures: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}

    def blocked_for(self, key: str, now: float) -> float:
        """Seconds the key stays blocked (0 when it is not)."""
        until = self._blocked_until.get(key)
        if until is None:
            return 0.0
        if until <= now:
            del self._blocked_until[key]
            return 0.0
        return until - now

    def record(self, key: str, now: float) -> bool:
        """Count a failure; True when this failure blocks the key."""
        times = self._failures.setdefault(key, deque())
        times.append(now)
        while times and times[0] <= now - self._window:
            times.popleft()
        if len(times) >= self._limit:
            self._blocked_until[key] = now + self._block
            del self._failures[key]
            return True
        return False

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)

    def prune(self, now: float) -> None:
        """Forget keys whose failures have all left the window (call from a periodic sweep)."""
        for key in [k for k, t in self._failures.items() if not t or t[-1] <= now - self._window]:
            del self._failures[key]
        for key in [k for k, until in self._blocked_until.items() if until <= now]:
            del self._blocked_until[key]


class Backoff:
    """Failures per key in a sliding window; past `free` failures, attempts are spaced out.

    Each attempt past the allowance is given a turn `interval` after the previous one (1 s, doubling
    with every further failure, at most `ceiling`), so parallel attempts queue up behind each other
    instead of all being answered at once: an attacker is slowed down, never allowed to lock anyone out.
    """

    __slots__ = ("_ceiling", "_failures", "_free", "_turns", "_window")

    def __init__(self, *, free: int, window: float, ceiling: float) -> None:
        self._free = free
        self._window = window
        self._ceiling = ceiling
        self._failures: dict[str, deque[float]] = {}
        self._turns: dict[str, float] = {}  # when the latest turn handed out starts

    def interval(self, key: str, now: float) -> float:
        """The spacing attempts for `key` need now (0 while within the allowance)."""
        times = self._failures.get(key)
        if times is None:
            return 0.0
        while times and times[0] <= now - self._window:
            times.popleft()
        excess = len(times) - self._free
        if excess < 0:
            return 0.0
        return min(self._ceiling, 2.0 ** min(excess, 32))

    def take_turn(self, key: str, now: float) -> float:
        """Seconds this attempt must wait for its turn; the turn is reserved."""
        interval = self.interval(key, now)
        if interval <= 0:
            return 0.0
        start = max(now + interval, self._turns.get(key, now) + interval)
        self._turns[key] = start
        return start - now

    def record(self, key: str, now: float) -> None:
        """Count a failure."""
        self._failures.setdefault(key, deque()).append(now)

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)
        self._turns.pop(key, None)

    def prune(self, now: float) -> None:
        """Forget keys whose failures have all left the window (call from a periodic sweep)."""
        for key in [k for k, t in self._failures.items() if not t or t[-1] <= now - self._window]:
            del self._failures[key]
        for key in [k for k, start in self._turns.items() if start <= now]:
            del self._turns[key]
