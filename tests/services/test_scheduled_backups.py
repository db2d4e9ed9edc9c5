"""Daily backups driven by an injected clock: when they run, what rotation keeps, what the console reads."""

from __future__ import annotations

import asyncio
import stat
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from appliance.app.storage import Storage
from appliance.catalog import default_config
from appliance.config import Config
from appliance.services.backup import read_manifest
from appliance.services.scheduled_backups import BackupSchedule, last_status, next_run

PARIS = timezone(timedelta(hours=1))


class FakeTime:
    """A clock that moves only when the schedule sleeps; stops the loop after `turns` sleeps."""

    def __init__(self, start: datetime, turns: int) -> None:
        self.now = start
        self.turns = turns
        self.slept: list[float] = []

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if len(self.slept) == self.turns:
            raise asyncio.CancelledError
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def config(tmp_path: Path) -> Config:
    storage = await Storage.open(tmp_path / "state")  # a real database with its schema
    await storage.close()
    cfg = default_config(tmp_path / "state")
    return replace(cfg, backup=replace(cfg.backup, time="03:30", keep=2))


def test_next_run_is_the_next_time_of_day_in_the_clock_zone() -> None:
    assert next_run(datetime(2026, 12, 5, 10, 0, tzinfo=PARIS), "03:30") == datetime(2026, 12, 6, 3, 30, tzinfo=PARIS)
    assert next_run(datetime(2026, 12, 5, 3, 0, tzinfo=PARIS), "03:30") == datetime(2026, 12, 5, 3, 30, tzinfo=PARIS)
    # exactly at the time: the backup of today has just run, the next is tomorrow
    assert next_run(datetime(2026, 12, 5, 3, 30, tzinfo=PARIS), "03:30") == datetime(2026, 12, 6, 3, 30, tzinfo=PARIS)


async def test_three_days_of_backups_keep_the_newest_two(config: Config) -> None:
    time = FakeTime(datetime(2026, 12, 5, 10, 0, tzinfo=PARIS), turns=3)
    schedule = BackupSchedule(lambda: config, clock=time.clock, sleep=time.sleep)
    assert last_status(config) is None
    with pytest.raises(asyncio.CancelledError):
        await schedule.run_forever()
    assert time.slept == [17.5 * 3600, 24 * 3600, 24 * 3600]
    folder = config.server.state_dir / "backups"
    kept = sorted(p.name for p in folder.glob("parlour-backup-*.tar.gz"))
    # 03:30 in Paris is 02:30 UTC; the first day's backup was rotated away
    assert kept == ["parlour-backup-20261207-023000.tar.gz", "parlour-backup-20261208-023000.tar.gz"]
    assert all(stat.S_IMODE((folder / name).stat().st_mode) == 0o600 for name in kept)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    status = last_status(config)
    assert status is not None and status.ok and status.file == kept[-1] and status.error == ""
    assert status.time == "2026-12-08T03:30:00+01:00" and status.size == (folder / kept[-1]).stat().st_size
    assert read_manifest(folder / kept[-1]).created == "2026-12-08T02:30:00+00:00"


async def test_a_disabled_schedule_writes_nothing_and_a_failure_is_recorded(config: Config) -> None:
    off = replace(config, backup=replace(config.backup, enabled=False))
    time = FakeTime(datetime(2026, 12, 5, 10, 0, tzinfo=PARIS), turns=2)
    with pytest.raises(asyncio.CancelledError):
        await BackupSchedule(lambda: off, clock=time.clock, sleep=time.sleep).run_forever()
    assert len(time.slept) == 2 and last_status(config) is None
    (config.server.state_dir / "parlour.db").unlink()
    status = await BackupSchedule(lambda: config, clock=time.clock, sleep=time.sleep).run_once()
    assert not status.ok and "no database" in status.error and status.file == ""
    assert last_status(config) == status
