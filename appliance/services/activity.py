"""A small time series of the server's activity for the dashboard graphs: per hour over the last eight days,
the most sessions online at once, messages sent, logins and failed logins (clients and console).

It is sampled from the live counters once a minute and kept in <state_dir>/activity.json across restarts
(a few kilobytes; no database table, so it works the same on SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from appliance.util.files import write_atomically

log = logging.getLogger(__name__)

HOUR = 3600
HOURS_KEPT = 8 * 24
SAMPLE_INTERVAL = 60.0
SAVE_EVERY = 10  # samples between writes of the file
# Which live counters feed which series (their increase between samples is added to the hour).
COUNTERS: dict[str, tuple[str, ...]] = {
    "messages": ("messages_in",),
    "logins": ("logins",),
    "failed_logins": ("auth_failures", "console_login_failures_password"),
}


@dataclass(slots=True)
class Hour:
    """One hour of activity; `start` is its first second (Unix time, a multiple of 3600)."""

    start: int
    sessions: int = 0  # the most sessions online at once
    messages: int = 0
    logins: int = 0
    failed_logins: int = 0


class ActivityHistory:
    """Hourly figures from the counters `stats` and the number of sessions `online()`."""

    def __init__(self, path: Path, stats: Mapping[str, int], online: Callable[[], int], *,
                 now: Callable[[], float] = time.time) -> None:
        self.path = path
        self.stats = stats
        self.online = online
        self.now = now
        self.hours: dict[int, Hour] = {}
        # The counters at the previous sample: they start at zero with the process, like the core's.
        self._last: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._samples = 0

    def load(self) -> None:
        """The figures kept by an earlier run; a damaged file is set aside with a warning, not fatal."""
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
            self.hours = {int(h["start"]): Hour(**h) for h in saved["hours"]}
        except FileNotFoundError:
            return
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("%s is damaged (%s); the activity graphs start afresh", self.path, exc)
            self.hours = {}
        self._trim()

    def save(self) -> None:
        data = {"version": 1, "hours": [asdict(h) for h in sorted(self.hours.values(), key=lambda h: h.start)]}
        write_atomically(self.path, json.dumps(data, separators=(",", ":")), mode=0o600)

    def sample(self) -> None:
        """Add what happened since the last sample to the current hour; save every few samples."""
        current = {name: sum(self.stats.get(c, 0) for c in counters) for name, counters in COUNTERS.items()}
        hour = self._hour(self.now())
        hour.sessions = max(hour.sessions, self.online())
        for name, value in current.items():
            setattr(hour, name, getattr(hour, name) + max(0, value - self._last[name]))
        self._last = current
        self._samples += 1
        if self._samples % SAVE_EVERY == 0:
            self._trim()
            self.save()

    async def sample_periodically(self) -> None:
        """The job a TaskSupervisor runs every SAMPLE_INTERVAL seconds."""
        self.sample()

    def series(self, hours: int) -> list[Hour]:
        """The last `hours` hours, oldest first, the current one included; hours without data are zeros."""
        newest = int(self.now()) // HOUR * HOUR
        starts = range(newest - (hours - 1) * HOUR, newest + HOUR, HOUR)
        return [self.hours.get(start) or Hour(start) for start in starts]

    def days(self, days: int) -> list[Hour]:
        """The last `days` days as one Hour per day (start = midnight UTC): peak sessions, summed counts."""
        today = int(self.now()) // 86400 * 86400
        out = []
        for start in range(today - (days - 1) * 86400, today + 86400, 86400):
            day = Hour(start)
            for hour in (self.hours.get(start + h * HOUR) for h in range(24)):
                if hour is not None:
                    day.sessions = max(day.sessions, hour.sessions)
                    day.messages += hour.messages
                    day.logins += hour.logins
                    day.failed_logins += hour.failed_logins
            out.append(day)
        return out

    def _hour(self, when: float) -> Hour:
        start = int(when) // HOUR * HOUR
        hour = self.hours.get(start)
        if hour is None:
            hour = self.hours[start] = Hour(start)
        return hour

    def _trim(self) -> None:
        oldest = int(self.now()) // HOUR * HOUR - (HOURS_KEPT - 1) * HOUR
        for start in [s for s in self.hours if s < oldest]:
            del self.hours[start]


__all__ = ["ActivityHistory", "Hour"]
