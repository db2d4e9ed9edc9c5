"""How the server is doing, for the dashboard, the API and /metrics: counts, sizes, certificates, log lines."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from appliance import __version__
from appliance.certs.store import CertificateInfo, CertificateStore
from appliance.core.sessions import SessionDirectory
from appliance.platform.updates import Update, UpdateCheck
from appliance.services.accounts import AccountAdmin
from appliance.util.logbuffer import LogLine, RingBufferHandler


@dataclass(frozen=True, slots=True)
class Status:
    version: str
    uptime: float
    sessions: int
    accounts: int
    messages_today: int
    certificates: list[Any]
    database_size: int
    hosts: tuple[str, ...]
    update: Update | None = None  # a newer Parlour package apt would install (VM image, .deb)


class ServerStatus:
    """Read-only figures of one running server; `stats` is the core's live counter table."""

    def __init__(self, *, accounts: AccountAdmin, sessions: SessionDirectory, stats: dict[str, int],
                 certs: CertificateStore | None, database_size: Callable[[], Awaitable[int]], started_at: float,
                 log_buffer: RingBufferHandler | None, updates: UpdateCheck | None = None) -> None:
        self.accounts = accounts
        self.sessions = sessions
        self.stats = stats
        self.certs = certs
        self.database_size = database_size  # bytes: SQLite's file and WAL, or PostgreSQL's pg_database_size
        self.started_at = started_at
        self.log_buffer = log_buffer
        self.updates = updates
        self._day = dt.date.today()
        self._messages_at_midnight = 0

    @property
    def hosts(self) -> tuple[str, ...]:
        return self.accounts.hosts

    def count(self, name: str) -> None:
        """Add one to the counter `name` (shown on /metrics)."""
        self.stats[name] = self.stats.get(name, 0) + 1

    def uptime(self) -> float:
        return time.time() - self.started_at

    def messages_today(self) -> int:
        total = self.stats.get("messages_in", 0)
        today = dt.date.today()
        if today != self._day:
            self._day, self._messages_at_midnight = today, total
        return total - self._messages_at_midnight

    def certificates(self) -> list[CertificateInfo]:
        return self.certs.info() if self.certs is not None else []

    async def status(self) -> Status:
        return Status(
            version=__version__, uptime=self.uptime(), sessions=len(self.sessions),
            accounts=await self.accounts.count(), messages_today=self.messages_today(),
            certificates=self.certificates(), database_size=await self.database_size(),
            hosts=self.hosts, update=self.updates.available if self.updates is not None else None,
        )

    def logs(self, contains: str = "", level: str = "", limit: int = 500) -> list[LogLine]:
        buffer = self.log_buffer
        return buffer.lines(contains=contains, min_level=level, limit=limit) if buffer is not None else []


__all__ = ["ServerStatus", "Status"]
