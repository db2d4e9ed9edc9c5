"""When to renew and what to do when it fails: the certificate maintenance task of the server.

Policy: renew when a third of the certificate's lifetime is left (or names are missing); after a
failure wait with exponential backoff (1 minute doubling to a day), never less than the authority's
Retry-After; warn administrators (log and XMPP) when a certificate has less than 14 days left or
renewal fails, at most once a day each. The clock is injected so tests can move time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable

from appliance.certs.acme.client import AcmeFailure
from appliance.certs.acme.manager import AcmeManager
from appliance.certs.acme.state import AcmeStatus
from appliance.certs.store import CertificateInfo, CertificateStore

__all__ = ["RenewalScheduler", "backoff", "renewal_due"]

log = logging.getLogger(__name__)

CHECK_INTERVAL = 3600.0
BACKOFF_BASE = 60.0
BACKOFF_MAX = 86400.0
WARN_BEFORE = dt.timedelta(days=14)
NOTICE_EVERY = dt.timedelta(days=1)

Clock = Callable[[], dt.datetime]
Notify = Callable[[str], Awaitable[None]]


def renewal_due(info: CertificateInfo, now: dt.datetime) -> bool:
    """Whether a third (or less) of the certificate's lifetime is left."""
    lifetime = info.not_after - info.not_before
    return info.not_after - now <= lifetime / 3


def backoff(failures: int, retry_after: float | None = None) -> float:
    """Seconds to wait after ``failures`` consecutive failures, at least the CA's Retry-After."""
    delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** max(0, failures - 1))
    return max(delay, retry_after or 0.0)


async def _no_notify(_text: str) -> None:
    return None


class RenewalScheduler:
    """Periodic certificate care: reload changed files, warn about expiry, renew over ACME."""

    def __init__(self, store: CertificateStore, manager: AcmeManager | None, *, notify: Notify = _no_notify,
                 clock: Clock | None = None) -> None:
        self.store = store
        self.manager = manager
        self.notify = notify
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        status = manager.state.load_status() if manager is not None else None
        self.failures = status.failures if status is not None and not status.ok else 0
        self.next_attempt = status.next_attempt if status is not None and not status.ok else None
        self._noticed: dict[str, dt.datetime] = {}

    async def run(self) -> None:
        """Tick forever (the server runs this as a supervised task)."""
        while True:
            try:
                delay = await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Certificate maintenance failed")
                delay = CHECK_INTERVAL
            await asyncio.sleep(delay)

    async def tick(self, *, force: bool = False) -> float:
        """One round; returns the seconds until the next one."""
        now = self.clock()
        await asyncio.to_thread(self.store.reload)
        await self._warn_expiring(now)
        if self.manager is None:
            return CHECK_INTERVAL
        if not force and self.next_attempt is not None and now < self.next_attempt:
            return min(CHECK_INTERVAL, (self.next_attempt - now).total_seconds())
        current = self.manager.current()
        if not force and current is not None and not renewal_due(current, now) and not self._missing(current):
            return CHECK_INTERVAL
        return await self._attempt(now, force=force or current is None or renewal_due(current, now))

    def _missing(self, current: CertificateInfo) -> bool:
        assert self.manager is not None
        return bool(set(self.manager.names) - set(current.names))

    async def _attempt(self, now: dt.datetime, *, force: bool) -> float:
        assert self.manager is not None
        names = self.manager.names
        try:
            info = await self.manager.obtain(force=force)
        except AcmeFailure as exc:
            self.failures += 1
            delay = backoff(self.failures, exc.retry_after)
            self.next_attempt = now + dt.timedelta(seconds=delay)
            self.manager.state.save_status(AcmeStatus(False, now, names, exc.problems, self.next_attempt,
                                                      self.failures))
            for problem in exc.problems:
                log.warning("Certificate for %s: %s", ", ".join(names), problem)
            await self._notice("renewal", now, "Parlour could not get a certificate for " + ", ".join(names)
                               + ":\n" + "\n".join(f"- {p}" for p in exc.problems if p.severity == "error")
                               + f"\nNext attempt: {self.next_attempt:%Y-%m-%d %H:%M} UTC.")
            return delay
        self.failures, self.next_attempt = 0, None
        self.manager.state.save_status(AcmeStatus(True, now, names, self.manager.last_problems))
        if info is not None:
            log.info("New certificate for %s, valid until %s", ", ".join(info.names), info.not_after)
        return CHECK_INTERVAL

    async def _warn_expiring(self, now: dt.datetime) -> None:
        for info in self.store.info():
            if info.self_signed or info.not_after - now >= WARN_BEFORE:
                continue
            days = max(0, (info.not_after - now).days)
            text = (f"The certificate for {', '.join(info.names)} ({info.chain}) expires on "
                    f"{info.not_after:%Y-%m-%d} ({days} days left). Renew or replace it: `parlour cert status` "
                    "shows why it was not renewed.")
            log.warning("%s", text)
            await self._notice(f"expiry:{info.fingerprint_sha256}", now, text)

    async def _notice(self, key: str, now: dt.datetime, text: str) -> None:
        """Tell administrators over XMPP, at most once per NOTICE_EVERY for the same ``key``."""
        last = self._noticed.get(key)
        if last is not None and now - last < NOTICE_EVERY:
            return
        self._noticed[key] = now
        try:
            await self.notify(text)
        except Exception:
            log.exception("Could not notify administrators")
