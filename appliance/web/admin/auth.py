"""Console logins: cookie sessions, CSRF tokens, login throttling, and why access is denied."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass

from aiohttp import web

from appliance.util.ratelimit import FailureTracker

COOKIE = "parlour_admin"
LOGIN_CSRF_COOKIE = "parlour_login_csrf"
COOKIE_PATH = "/admin"


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
        self.ip_failures = FailureTracker(limit=failures, window=window, block=block)
        self.account_failures = FailureTracker(limit=failures, window=window, block=block)

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

    def blocked_for(self, ip: str, account: str) -> float:
        now = time.monotonic()
        return max(self.ip_failures.blocked_for(ip, now), self.account_failures.blocked_for(account, now))

    def failed(self, ip: str, account: str) -> None:
        now = time.monotonic()
        self.ip_failures.record(ip, now)
        self.account_failures.record(account, now)

    def succeeded(self, ip: str, account: str) -> None:
        self.ip_failures.clear(ip)
        self.account_failures.clear(account)


def csrf_ok(expected: str, offered: object) -> bool:
    return isinstance(offered, str) and bool(offered) and hmac.compare_digest(offered.encode(), expected.encode())


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: float) -> None:
    response.set_cookie(name, value, max_age=int(max_age), httponly=True, samesite="Strict",
                        secure=request.secure, path=COOKIE_PATH)


def client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


__all__ = ["COOKIE", "LOGIN_CSRF_COOKIE", "ConsoleSession", "ConsoleSessions", "client_ip", "csrf_ok",
           "set_cookie"]
