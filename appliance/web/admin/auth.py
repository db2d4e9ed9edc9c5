"""Console logins: cookie sessions, CSRF tokens, login throttling, and why access is denied."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from appliance.util.lru import LruDict
from appliance.util.ratelimit import FailureTracker
from appliance.xmpp.jid import JID, JIDError

COOKIE = "parlour_admin"
LOGIN_CSRF_COOKIE = "parlour_login_csrf"
COOKIE_PATH = "/admin"
ACCOUNT_FACTOR = 4  # failures on one account from all sources, in multiples of the per-source limit
KNOWN_SOURCES = 10_000  # (account, source) pairs remembered after a successful login
PRUNE_EVERY = 1_000  # failures between sweeps of counters whose failures all left the window


@dataclass(slots=True)
class ConsoleSession:
    jid: str
    csrf: str
    expires: float
    flash: tuple[str, str] | None = None  # ("ok" | "error", text) shown once on the next page


class ConsoleSessions:
    """Logged-in administrators by random session id (memory only: a restart logs everyone out)."""

    def __init__(self, *, lifetime: float, failures: int, window: float, block: float) -> None:
        self.lifetime = lifetime
        self._sessions: dict[str, ConsoleSession] = {}
        self.throttle = LoginThrottle(limit=failures, window=window, block=block)

    def create(self, jid: str) -> tuple[str, ConsoleSession]:
        self.prune()
        sid = secrets.token_urlsafe(32)
        session = self._sessions[sid] = ConsoleSession(jid, secrets.token_urlsafe(32), time.time() + self.lifetime)
        return sid, session

    def get(self, sid: str | None) -> ConsoleSession | None:
        session = self._sessions.get(sid) if sid else None
        if session is None:
            return None
        if session.expires <= time.time():
            self._sessions.pop(sid, None)  # type: ignore[arg-type]
            return None
        return session

    def end(self, sid: str | None) -> None:
        if sid:
            self._sessions.pop(sid, None)

    def end_for(self, jid: str) -> None:
        """Log an account out everywhere (it lost its administrator role or was deleted)."""
        for sid in [s for s, session in self._sessions.items() if session.jid == jid]:
            del self._sessions[sid]

    def prune(self) -> None:
        now = time.time()
        for sid in [s for s, session in self._sessions.items() if session.expires <= now]:
            del self._sessions[sid]



class LoginThrottle:
    """Failed console logins, counted so that guessing from elsewhere cannot lock the administrator out.

    A source (an IPv4 address, an IPv6 /64) that fails `limit` times within `window` is refused for
    `block` seconds, whatever account it names. An account that fails `ACCOUNT_FACTOR * limit` times
    from all sources together (guessing spread over many addresses) is refused for `block` seconds too,
    except from a source that has logged in to it before: the administrator at their usual desk gets in.
    """

    def __init__(self, *, limit: int, window: float, block: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.sources = FailureTracker(limit=limit, window=window, block=block)
        self.accounts = FailureTracker(limit=limit * ACCOUNT_FACTOR, window=window, block=block)
        self.known: LruDict[tuple[str, str], bool] = LruDict(KNOWN_SOURCES)
        self._failures = 0

    def blocked_for(self, ip: str, account: str) -> float:
        """Seconds before `ip` may try `account` (a key from `account_key`) again; 0 when it may now."""
        now, source = self.clock(), source_key(ip)
        wait = self.sources.blocked_for(source, now)
        if self.known.get((account, source)) is None:
            wait = max(wait, self.accounts.blocked_for(account, now))
        return wait

    def failed(self, ip: str, account: str) -> None:
        now = self.clock()
        self.sources.record(source_key(ip), now)
        self.accounts.record(account, now)
        self._failures += 1
        if self._failures % PRUNE_EVERY == 0:  # every guessed name is a key: forget the stale ones
            self.sources.prune(now)
            self.accounts.prune(now)

    def succeeded(self, ip: str, account: str) -> None:
        # The account's own counter stays: the guessing elsewhere has not stopped because its owner got in.
        source = source_key(ip)
        self.sources.clear(source)
        self.known.put((account, source), True)


def account_key(text: str) -> str:
    """One key for every spelling of an address (trailing dot, case, fullwidth letters: RFC 7622)."""
    try:
        return str(JID.parse(text.strip()).bare())
    except JIDError:
        return text.strip().lower()


def source_key(ip: str) -> str:
    """An IPv4 address, or the /64 of an IPv6 address (one subscriber usually holds a whole /64)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def csrf_ok(expected: str, offered: object) -> bool:
    return isinstance(offered, str) and bool(offered) and hmac.compare_digest(offered.encode(), expected.encode())


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: float) -> None:
    response.set_cookie(name, value, max_age=int(max_age), httponly=True, samesite="Strict",
                        secure=request.secure, path=COOKIE_PATH)


def client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


__all__ = ["COOKIE", "LOGIN_CSRF_COOKIE", "ConsoleSession", "ConsoleSessions", "LoginThrottle", "account_key",
           "client_ip", "csrf_ok", "set_cookie", "source_key"]
