"""Password guessing is slowed down per source, never turned into a lockout of the real user (issue 13).

Attackers connect from other loopback addresses (127.0.0.2, ...); the real user from 127.0.0.1. A login
that is held back shows in the server's `auth_delayed` count the moment it starts waiting."""

from __future__ import annotations

import asyncio
import base64
import hmac
import uuid
from dataclasses import replace
from pathlib import Path

from lxml import etree

from appliance.xmpp.ns import NS_FAST, NS_SASL, NS_SASL2
from tests.integration.harness import PASSWORD, Harness, make_config, start_harness
from tests.integration.test_hostile import RawClient
from tests.integration.test_sasl2 import authenticate, scram_login

TIMEOUT = 15.0


async def throttled_harness(tmp_path: Path, **limits: object) -> Harness:
    # Waits long enough that a throttled login would never finish within a test's timeouts.
    return await start_harness(tmp_path, limits=replace(make_config(tmp_path).limits, auth_max_delay=3600.0,
                                                        **limits))


async def plain_attempt(harness: Harness, source: str, password: str) -> RawClient:
    """Connect from `source`, STARTTLS and send a SASL PLAIN attempt for alice (answer not read)."""
    raw = await RawClient.connect(harness, source=source)
    await raw.open()
    await raw.starttls(harness)
    creds = base64.b64encode(f"\0alice\0{password}".encode()).decode()
    await raw.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{creds}</auth>")
    return raw


async def guess(harness: Harness, source: str) -> None:
    raw = await plain_attempt(harness, source, "letmein")
    try:
        answer = await raw.element()
        assert answer.tag == f"{{{NS_SASL}}}failure", etree.tostring(answer)
        assert answer.find(f"{{{NS_SASL}}}not-authorized") is not None, etree.tostring(answer)
    finally:
        await raw.close()


def delayed(harness: Harness) -> int:
    return harness.server.core.stats.get("auth_delayed", 0)


async def until_delayed(harness: Harness, count: int) -> None:
    async with asyncio.timeout(TIMEOUT):
        while delayed(harness) < count:
            await asyncio.sleep(0.01)


async def test_guesses_from_elsewhere_do_not_lock_the_user_out(tmp_path: Path) -> None:
    harness = await throttled_harness(tmp_path)
    try:
        alice = await harness.user("alice")
        for _ in range(harness.server.config.limits.auth_failures_per_account):
            await guess(harness, "127.0.0.2")
        assert delayed(harness) == 0  # within the allowance nothing waits
        # The attacker's next guess is held back ...
        held = await plain_attempt(harness, "127.0.0.2", "letmein2")
        await until_delayed(harness, 1)
        # ... while the real user, from her own address, logs in at once with slixmpp.
        client = await harness.client(alice)
        assert client.boundjid.bare == alice
        assert delayed(harness) == 1
        await held.close()
    finally:
        await harness.close()


async def test_failures_slow_down_the_same_address_but_the_right_password_still_works(tmp_path: Path) -> None:
    harness = await start_harness(tmp_path, limits=replace(make_config(tmp_path).limits, auth_failures_per_account=2))
    try:
        alice = await harness.user("alice")
        for _ in range(2):
            await guess(harness, "127.0.0.1")
        client = await harness.client(alice)  # waits its turn (1 s), then gets in: slowed, not blocked
        assert client.boundjid.bare == alice
        assert delayed(harness) == 1
    finally:
        await harness.close()


async def test_guessing_spread_over_many_addresses_lets_a_known_address_and_a_fast_token_through(
    tmp_path: Path,
) -> None:
    harness = await throttled_harness(tmp_path, auth_failures_per_account=1)  # ten from all addresses
    try:
        alice = await harness.user("alice")
        agent = str(uuid.uuid4())
        request = f"<request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-NONE'/>"
        raw, success = await scram_login(harness, agent, request)
        await raw.close()  # alice has logged in from 127.0.0.1 and holds a FAST token
        token = success.find(f"{{{NS_FAST}}}token")
        assert token is not None, etree.tostring(success)
        for n in range(2, 12):  # ten addresses, one guess each: the account-wide allowance is used up
            await guess(harness, f"127.0.0.{n}")
        assert delayed(harness) == 0
        # A new address, even with the right password, now waits ...
        stranger = await plain_attempt(harness, "127.0.0.20", PASSWORD)
        await until_delayed(harness, 1)
        # ... but alice's known address gets in at once, and so does her FAST token from anywhere.
        client = await harness.client(alice)
        assert client.boundjid.bare == alice
        fast = await RawClient.connect(harness, source="127.0.0.21")
        await fast.open()
        await fast.starttls(harness)
        proof = hmac.digest((token.get("token") or "").encode(), b"Initiator", "sha256")
        await fast.send(authenticate("HT-SHA-256-NONE", b"alice\0" + proof, agent, f"<fast xmlns='{NS_FAST}'/>"))
        answer = await fast.element()
        assert answer.tag == f"{{{NS_SASL2}}}success", etree.tostring(answer)
        assert delayed(harness) == 1
        await fast.close()
        await stranger.close()
    finally:
        await harness.close()
