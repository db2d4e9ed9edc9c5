"""When to renew and what to do when it fails: the certificate maintenance task of the server.

Policy: renew when a third of the certificate's lifetime is left (or names are missing); after a
failure wait with exponential backoff (1 minute doubling to a day, but at most a quarter of the time the
certificate has left), never less than the authority's Retry-After; warn administrators (log and XMPP)
when a certificate nears its end (14 days, or a sixth of the lifetime of short-lived ones) or renewal
fails, at most once a day each. The task sleeps until the next thing that is due (renewal time, next
attempt, warning), at most an hour, and ``wake()`` makes it look again at once (files changed on disk,
a renewal asked for). Clock and sleep are injected so tests can move time.
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

__all__ = ["RenewalScheduler", "backoff", "renewal_due", "renewal_time", "warn_before"]

log = logging.getLogger(__name__)

CHECK_INTERVAL = 3600.0  # the longest sleep: a wall-clock jump (suspend, NTP) is noticed within an hour
MIN_DELAY = 1.0  # never spin: something due "now" that stays due is looked at again a second later
BACKOFF_BASE = 60.0
BACKOFF_MAX = 86400.0
WARN_BEFORE = dt.timedelta(days=14)
NOTICE_EVERY = dt.timedelta(days=1)

Clock = Callable[[], dt.datetime]
Sleep = Callable[[float], Awaitable[None]]
Notify = Callable[[str], Awaitable[None]]
Prepare = Callable[[], Awaitable[None]]


def renewal_time(info: CertificateInfo) -> dt.datetime:
    """The moment a third of the certificate's lifetime is left."""
    return info.not_after - (info.not_after - info.not_before) / 3


def renewal_due(info: CertificateInfo, now: dt.datetime) -> bool:
    """Whether a third (or less) of the certificate's lifetime is left."""
    return now >= renewal_time(info)


def warn_before(info: CertificateInfo) -> dt.timedelta:
    """How long before its end a certificate counts as expiring: 14 days, or a sixth of a short lifetime
    (a 6-day certificate renewed at 2 days left is not "expiring" all its life)."""
    return min(WARN_BEFORE, (info.not_after - info.not_before) / 6)


def backoff(failures: int, retry_after: float | None = None, time_left: float | None = None) -> float:
    """Seconds to wait after ``failures`` consecutive failures, at least the CA's Retry-After.

    ``time_left`` (seconds the served certificate still has) caps the wait at a quarter of it, so a
    certificate with a lifetime of hours still gets several attempts before it expires.
    """
    delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** max(0, failures - 1))
    if time_left is not None and time_left > 0:
        delay = min(delay, max(BACKOFF_BASE, time_left / 4))
    return max(delay, retry_after or 0.0)


async def _no_notify(_text: str) -> None:
    return None


class RenewalScheduler:
    """Certificate care over time: reload changed files, warn about expiry, renew over ACME."""

    def __init__(self, store: CertificateStore, manager: AcmeManager | None, *, notify: Notify = _no_notify,
                 clock: Clock | None = None, sleep: Sleep | None = None, prepare: Prepare | None = None) -> None:
        self.store = store
        self.manager = manager
        self.notify = notify
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.prepare = prepare  # run before each attempt (binds the challenge listener if it is not bound)
        self._sleep = sleep
        self._wake = asyncio.Event()
        self._attempting = asyncio.Lock()  # the timer, the console and a CLI request never order at once
        self._noticed: dict[str, dt.datetime] = {}
        self.failures = 0
        self.next_attempt: dt.datetime | None = None
        self.load_status()

    def load_status(self) -> None:
        """Take failures and the next attempt from the status file (an attempt by the CLI writes it too)."""
        status = self.manager.state.load_status() if self.manager is not None else None
        failed = status is not None and not status.ok
        self.failures = status.failures if status is not None and failed else 0
        self.next_attempt = status.next_attempt if status is not None and failed else None

    def wake(self) -> None:
        """Look again now instead of at the planned time (files changed, a renewal was asked for)."""
        self._wake.set()

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
            log.debug("Next certificate check in %.0f seconds", delay)
            await self._pause(delay)

    async def _pause(self, delay: float) -> None:
        if self._sleep is not None:
            await self._sleep(delay)
            return
        try:
            async with asyncio.timeout(delay):
                await self._wake.wait()
        except TimeoutError:
            pass
        self._wake.clear()

    async def tick(self, *, force: bool = False, by: str = "timer") -> float:
        """One round; returns the seconds until the next thing is due (at most ``CHECK_INTERVAL``)."""
        now = self.clock()
        await asyncio.to_thread(self.store.reload)
        await self._warn_expiring(now)
        if self.manager is not None:
            async with self._attempting:
                await self._maybe_attempt(now, force=force, by=by)
        return self._next_delay(self.clock())

    async def renew(self, *, by: str, request: str = "") -> None:
        """Order now because someone asked (console, CLI), whatever the backoff says; the status
        written carries ``by`` and ``request``."""
        if self.manager is None:
            return
        await asyncio.to_thread(self.store.reload)
        async with self._attempting:
            await self._maybe_attempt(self.clock(), force=True, by=by, request=request)
        self.wake()  # the timer plans again from the new certificate or failure

    async def _maybe_attempt(self, now: dt.datetime, *, force: bool, by: str, request: str = "") -> None:
        assert self.manager is not None
        if not force and self.next_attempt is not None and now < self.next_attempt:
            return
        current = self.manager.current()
        due = current is None or renewal_due(current, now)
        if not force and not due and not self._missing(current):
            return
        names = ", ".join(self.manager.names)
        if force:
            log.info("Certificate for %s: renewal asked for (%s); ordering now", names, by)
        elif current is None:
            log.info("Certificate for %s: none from the certificate authority yet; ordering one", names)
        elif due:
            log.info("Certificate for %s: renewal due since %s UTC (valid until %s UTC); ordering a new one",
                     names, f"{renewal_time(current):%Y-%m-%d %H:%M:%S}", f"{current.not_after:%Y-%m-%d %H:%M:%S}")
        else:
            log.info("Certificate for %s: ordering again for the names it lacks", names)
        await self._attempt(now, force=force or due, by=by, request=request)

    def _next_delay(self, now: dt.datetime) -> float:
        """Seconds until the earliest of: next attempt, renewal time, an expiry warning; capped."""
        moments = [now + dt.timedelta(seconds=CHECK_INTERVAL)]
        if self.next_attempt is not None:
            moments.append(self.next_attempt)
        elif self.manager is not None and (current := self.manager.current()) is not None:
            moments.append(renewal_time(current))
        for info in self.store.info():
            if not info.self_signed:
                moments.extend(m for m in (info.not_after - warn_before(info), info.not_after) if m > now)
        return max(MIN_DELAY, (min(moments) - now).total_seconds())

    def _missing(self, current: CertificateInfo | None) -> bool:
        assert self.manager is not None
        return current is None or bool(set(self.manager.names) - set(current.names))

    async def _attempt(self, now: dt.datetime, *, force: bool, by: str, request: str) -> None:
        assert self.manager is not None
        names = self.manager.names
        try:
            if self.prepare is not None:
                await self.prepare()
            info = await self.manager.obtain(force=force)
        except AcmeFailure as exc:
            self.failures += 1
            current = self.manager.current()
            left = (current.not_after - now).total_seconds() if current is not None else None
            delay = backoff(self.failures, exc.retry_after, left)
            self.next_attempt = now + dt.timedelta(seconds=delay)
            self.manager.state.save_status(AcmeStatus(False, now, names, exc.problems, self.next_attempt,
                                                      self.failures, by=by, request=request))
            for problem in exc.problems:
                log.warning("Certificate for %s: %s", ", ".join(names), problem)
            log.warning("Certificate for %s: attempt %d failed; next attempt at %s UTC", ", ".join(names),
                        self.failures, f"{self.next_attempt:%Y-%m-%d %H:%M:%S}")
            await self._notice("renewal", now, "Parlour could not get a certificate for " + ", ".join(names)
                               + ":\n" + "\n".join(f"- {p}" for p in exc.problems if p.severity == "error")
                               + f"\nNext attempt: {self.next_attempt:%Y-%m-%d %H:%M} UTC.")
            return
        self.failures, self.next_attempt = 0, None
        self.manager.state.save_status(AcmeStatus(True, now, names, self.manager.last_problems, by=by,
                                                  request=request))
        if info is not None:
            log.info("New certificate for %s, valid until %s; renewal due at %s UTC", ", ".join(info.names),
                     info.not_after, f"{renewal_time(info):%Y-%m-%d %H:%M:%S}")

    async def _warn_expiring(self, now: dt.datetime) -> None:
        for info in self.store.info():
            if info.self_signed or info.not_after - now >= warn_before(info):
                continue
            left = info.not_after - now
            when = (f"expired on {info.not_after:%Y-%m-%d %H:%M} UTC" if left.total_seconds() <= 0 else
                    f"expires on {info.not_after:%Y-%m-%d %H:%M} UTC ({_duration(left)} left)")
            text = (f"The certificate for {', '.join(info.names)} ({info.chain}) {when}. Renew or replace it: "
                    "`parlour cert status` shows why it was not renewed.")
            if await self._notice(f"expiry:{info.fingerprint_sha256}", now, text):
                log.warning("%s", text)

    async def _notice(self, key: str, now: dt.datetime, text: str) -> bool:
        """Tell administrators over XMPP, at most once per NOTICE_EVERY for the same ``key``; whether it did."""
        last = self._noticed.get(key)
        if last is not None and now - last < NOTICE_EVERY:
            return False
        self._noticed[key] = now
        try:
            await self.notify(text)
        except Exception:
            log.exception("Could not notify administrators")
        return True


def _duration(left: dt.timedelta) -> str:
    """"12 days", "5 hours", "20 minutes": the unit that fits."""
    seconds = left.total_seconds()
    if seconds >= 2 * 86400:
        return f"{int(seconds // 86400)} days"
    if seconds >= 2 * 3600:
        return f"{int(seconds // 3600)} hours"
    return f"{max(0, int(seconds // 60))} minutes"
