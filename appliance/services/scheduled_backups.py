"""Daily backups while the server runs ([backup] in the config), the oldest removed, the last one's outcome
kept in `<folder>/last-backup.json` for the console."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

from appliance.config import Config
from appliance.config.model import BackupConfig
from appliance.services.backup import BackupError, default_name, make_backup
from appliance.services.errors import ServiceError, audit
from appliance.util.files import private_dir, write_atomically
from appliance.util.i18n import _

log = logging.getLogger(__name__)

STATUS_FILE = "last-backup.json"
PATTERN = "parlour-backup-*.tar.gz"  # what rotation may delete: only files named as backups are named

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]


def local_now() -> datetime:
    return datetime.now().astimezone()


@dataclass(frozen=True, slots=True)
class BackupStatus:
    """The outcome of the last scheduled backup."""

    time: str  # ISO 8601
    ok: bool
    file: str  # the file written, "" when it failed
    size: int  # bytes
    error: str  # why it failed, "" when it worked


def backup_folder(config: Config) -> Path:
    return config.backup.folder or config.server.state_dir / "backups"


def next_run(now: datetime, at: str) -> datetime:
    """The first `at` (HH:MM, in `now`'s time zone) strictly after `now`."""
    hour, minute = (int(part) for part in at.split(":"))
    candidate = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return candidate if candidate > now else candidate + timedelta(days=1)


def rotate(folder: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` backups in `folder` (their names sort by date); returns the deleted."""
    found = sorted(folder.glob(PATTERN))
    doomed = found[:-keep] if keep > 0 else found
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def last_status(config: Config) -> BackupStatus | None:
    """The last scheduled backup's outcome, None before the first."""
    try:
        data = json.loads((backup_folder(config) / STATUS_FILE).read_text(encoding="utf-8"))
        return BackupStatus(**{name: data[name] for name in BackupStatus.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        return None


class BackupSchedule:
    """Backs up once a day at [backup] time; `config` is read at each turn, so a reload applies."""

    def __init__(self, config: Callable[[], Config], *, clock: Clock = local_now,
                 sleep: Sleep = asyncio.sleep) -> None:
        self._config = config
        self._clock = clock
        self._sleep = sleep

    async def run_forever(self) -> None:
        while True:
            config = self._config()
            now = self._clock()
            await self._sleep(max(0.0, (next_run(now, config.backup.time) - now).total_seconds()))
            if self._config().backup.enabled:
                await self.run_once()

    async def run_once(self) -> BackupStatus:
        """One backup now, then rotation; a failure is logged and recorded, never raised."""
        config = self._config()
        folder = private_dir(backup_folder(config))
        now = self._clock()
        output = folder / default_name(now)
        try:
            result = await asyncio.to_thread(make_backup, config, output, now=now)
        except (BackupError, OSError) as exc:
            log.error("the scheduled backup into %s failed: %s", folder, exc)
            status = BackupStatus(now.isoformat(timespec="seconds"), False, "", 0, str(exc))
        else:
            deleted = rotate(folder, config.backup.keep)
            log.info("backup written to %s (%d bytes); %d old ones removed", output, result.size, len(deleted))
            status = BackupStatus(now.isoformat(timespec="seconds"), True, output.name, result.size, "")
        write_atomically(folder / STATUS_FILE, json.dumps(asdict(status)) + "\n", mode=0o600)
        return status




class BackupDesk:
    """What the console shows and offers: the last scheduled backup, and a fresh one to download."""

    def __init__(self, config: Callable[[], Config]) -> None:
        self._config = config

    @property
    def schedule(self) -> BackupConfig:
        return self._config().backup

    @property
    def folder(self) -> Path:
        return backup_folder(self._config())

    def last(self) -> BackupStatus | None:
        return last_status(self._config())

    async def fresh(self, actor: str) -> Path:
        """A new backup in the backups folder under a hidden name, for one download: the caller deletes it."""
        folder = private_dir(self.folder)
        output = folder / f".download-{secrets.token_hex(8)}.tar.gz"
        try:
            await asyncio.to_thread(make_backup, self._config(), output)
        except BackupError as exc:
            raise ServiceError(_("The backup failed: %(error)s", error=str(exc))) from None
        audit.info("%s downloaded a backup", actor)
        return output


__all__ = ["STATUS_FILE", "BackupDesk", "BackupSchedule", "BackupStatus", "backup_folder", "last_status", "next_run",
           "rotate"]
