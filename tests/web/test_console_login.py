"""Console login limits over real HTTP from several loopback source addresses (127.0.0.x): guessing is
throttled per source, every spelling of an address counts as that address, and failures are logged and
counted in /metrics."""

from __future__ import annotations

import aiohttp
import pytest

from appliance.web.admin.auth import ACCOUNT_FACTOR, PRUNE_EVERY, LoginThrottle
from tests.integration.harness import Harness
from tests.web.console_helpers import ADMIN, admin_login
from tests.web.test_metrics import scrape

WRONG = "not the password"
FULLWIDTH = str.maketrans({c: chr(ord(c) + 0xFEE0) for c in "abcdefghijklmnopqrstuvwxyz"})
SPELLINGS = ("boss@localhost.", "boss".translate(FULLWIDTH) + "@localhost", "BOSS@LocalHost",
             "boss@" + "localhost".translate(FULLWIDTH))


@pytest.fixture
def server(console_server: Harness) -> Harness:
    return console_server


def from_source(ip: str) -> aiohttp.ClientSession:
    """A client whose connections come from `ip` (any 127.0.0.0/8 address reaches a 127.0.0.1 listener)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                 connector=aiohttp.TCPConnector(local_addr=(ip, 0)))


def base(h: Harness) -> str:
    return f"http://127.0.0.1:{h.http_port}"


async def test_an_attacker_elsewhere_cannot_lock_the_administrator_out(server: Harness) -> None:
    url = base(server)
    limit = server.server.config.console.login_failures
    async with from_source("127.0.0.2") as attacker:
        for _ in range(limit):
            assert (await admin_login(attacker, url, password=WRONG))[0] == 401
        status, text = await admin_login(attacker, url)  # that source is blocked, even with the password
        assert status == 429 and "Too many failed logins" in text
    async with from_source("127.0.0.1") as boss:
        assert (await admin_login(boss, url))[0] == 200


async def test_guessing_from_many_sources_under_other_spellings_blocks_only_new_sources(server: Harness) -> None:
    url = base(server)
    async with from_source("127.0.0.1") as boss:  # the administrator's usual desk
        assert (await admin_login(boss, url))[0] == 200
    limit = server.server.config.console.login_failures
    guesses = ACCOUNT_FACTOR * limit
    per_source = limit - 1  # no single source reaches its own limit
    for n in range(0, guesses, per_source):
        async with from_source(f"127.0.0.{10 + n}") as attacker:
            for i in range(min(per_source, guesses - n)):
                assert (await admin_login(attacker, url, SPELLINGS[i % len(SPELLINGS)], WRONG))[0] == 401
    async with from_source("127.0.0.99") as newcomer:  # the account is guarded now from unknown places
        assert (await admin_login(newcomer, url))[0] == 429
    async with from_source("127.0.0.1") as boss:
        status, _text = await admin_login(boss, url, "boss@localhost.")  # any spelling logs in as boss
        assert status == 200


async def test_failures_are_logged_and_counted(server: Harness, caplog: pytest.LogCaptureFixture) -> None:
    url = base(server)
    limit = server.server.config.console.login_failures
    before = await scrape(server)
    async with from_source("127.0.0.3") as attacker:
        for _ in range(limit):
            await admin_login(attacker, url, SPELLINGS[1], WRONG)
        assert (await admin_login(attacker, url))[0] == 429
    after = await scrape(server)
    failed = 'parlour_console_login_failures_total{reason="password"}'
    throttled = 'parlour_console_login_failures_total{reason="throttled"}'
    assert after[failed] == before[failed] + limit
    assert after[throttled] == before[throttled] + 1
    assert caplog.text.count(f"console: failed login as '{ADMIN}' from 127.0.0.3") == limit


def test_the_counters_forget_what_left_the_window() -> None:
    """Every guessed name is a key: a sweep drops those whose failures are all older than the window."""
    now = [1000.0]
    throttle = LoginThrottle(limit=5, window=300, block=300, clock=lambda: now[0])
    for i in range(PRUNE_EVERY - 1):
        throttle.failed(f"10.0.{i // 250}.{i % 250}", f"guess{i}@localhost")
    assert throttle.blocked_for("10.0.0.0", "guess0@localhost") == 0  # counted, not blocked
    now[0] += 301
    throttle.failed("10.9.9.9", "last@localhost")  # the thousandth failure sweeps
    assert len(throttle.accounts._failures) == len(throttle.sources._failures) == 1
