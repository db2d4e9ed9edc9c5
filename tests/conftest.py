"""Suite-wide hooks: one line at the end of a run saying what was skipped and why, so that a `make test`
without chromium, the npm modules or Pebble does not look like a complete run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

import pytest

from tests.pgserver import PostgresServer, postgres_for_tests
from tests.redisserver import RedisServer, binary, running_redis


def skip_summary(reasons: Iterable[str]) -> str:
    """`skipped N: reason (count); ...`, most frequent first; empty when nothing was skipped."""
    counts = Counter(reason.removeprefix("Skipped: ") for reason in reasons)
    if not counts:
        return ""
    parts = "; ".join(f"{reason} ({count})" for reason, count in counts.most_common())
    return f"skipped {counts.total()}: {parts}"


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    line = skip_summary(_reason(report) for report in terminalreporter.stats.get("skipped", []))
    if line:
        terminalreporter.write_line(line, yellow=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL for the whole session (skipped when Debian's postgresql is not installed)."""
    with postgres_for_tests() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real Redis for the whole session (skipped when Debian's redis-server is not installed); tests
    empty it before use."""
    if binary() is None:
        pytest.skip("redis-server not installed (apt-get install redis-server)")
    with running_redis() as server:
        yield server
