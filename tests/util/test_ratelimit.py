"""Backoff: failures past the allowance space attempts out, doubling, and are forgotten after the window."""

from __future__ import annotations

from appliance.util.ratelimit import Backoff


def test_attempts_within_the_allowance_do_not_wait() -> None:
    backoff = Backoff(free=2, window=60, ceiling=10)
    for now in (0.0, 1.0):
        assert backoff.take_turn("ip", now) == 0
        backoff.record("ip", now)
    assert backoff.take_turn("ip", 2.0) == 1.0


def test_the_interval_doubles_up_to_the_ceiling() -> None:
    backoff = Backoff(free=0, window=1000, ceiling=10)
    intervals = []
    for n in range(6):
        backoff.record("ip", float(n))
        intervals.append(backoff.interval("ip", float(n)))
    assert intervals == [2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_parallel_attempts_queue_behind_each_other() -> None:
    backoff = Backoff(free=1, window=60, ceiling=60)
    backoff.record("ip", 0.0)
    assert [backoff.take_turn("ip", 0.0) for _ in range(3)] == [1.0, 2.0, 3.0]
    assert backoff.take_turn("other", 0.0) == 0


def test_failures_leave_the_window_and_clear_forgets_them() -> None:
    backoff = Backoff(free=1, window=60, ceiling=60)
    backoff.record("a", 0.0)
    backoff.record("b", 0.0)
    assert backoff.interval("a", 59.0) == 1.0
    assert backoff.interval("a", 60.0) == 0
    backoff.clear("b")
    assert backoff.take_turn("b", 1.0) == 0
    backoff.prune(61.0)
    assert backoff.interval("a", 61.0) == 0
