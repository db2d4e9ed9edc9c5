"""Slowing down password guessing without locking the real user out.

Failed logins are counted three ways: per source address (one guesser trying many accounts), per
account and source (one guesser on one account), and per account from everywhere (guessing spread over
many addresses). Past each allowance, further attempts wait for a turn that moves away exponentially
(`util.ratelimit.Backoff`); nothing is ever refused outright, so an attacker cannot deny the account to
its owner. The owner gets through the account-wide layer by proving itself: a FAST token (XEP-0484;
unguessable, so token logins are never slowed) or an address from which the account logged in before.
"""

from __future__ import annotations

from appliance.util.lru import LruDict
from appliance.util.ratelimit import Backoff

ACCOUNT_WIDE_FACTOR = 10  # failures to one account from all addresses, per the per-address allowance
KNOWN_ADDRESSES = 100_000  # (account, address) pairs remembered as having logged in


class AuthThrottle:
    """Decides how long a login attempt waits, and learns from its outcome."""

    __slots__ = ("_account", "_account_ip", "_ip", "_known")

    def __init__(self, *, per_ip: int, per_account: int, window: float, max_delay: float) -> None:
        self._ip = Backoff(free=per_ip, window=window, ceiling=max_delay)
        self._account_ip = Backoff(free=per_account, window=window, ceiling=max_delay)
        self._account = Backoff(free=per_account * ACCOUNT_WIDE_FACTOR, window=window, ceiling=max_delay)
        self._known: LruDict[tuple[str, str], bool] = LruDict(KNOWN_ADDRESSES)

    def wait(self, ip: str, account: str, now: float, *, token: bool = False) -> float:
        """Seconds an attempt on `account` from `ip` waits before its credentials are checked."""
        if token:
            return 0.0
        waits = [self._ip.take_turn(ip, now), self._account_ip.take_turn(f"{account} {ip}", now)]
        if self._known.get((account, ip)) is None:
            waits.append(self._account.take_turn(account, now))
        return max(waits)

    def failed(self, ip: str, account: str, now: float) -> None:
        self._ip.record(ip, now)
        self._account_ip.record(f"{account} {ip}", now)
        self._account.record(account, now)

    def succeeded(self, ip: str, account: str) -> None:
        """The account logged in from `ip`: that pair starts afresh and is trusted from now on."""
        self._account_ip.clear(f"{account} {ip}")
        self._known.put((account, ip), True)

    def prune(self, now: float) -> None:
        for backoff in (self._ip, self._account_ip, self._account):
            backoff.prune(now)


__all__ = ["AuthThrottle"]
