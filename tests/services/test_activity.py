"""The dashboard's time series: hourly figures from the live counters, kept across restarts."""

from __future__ import annotations

from pathlib import Path

from appliance.services.activity import HOURS_KEPT, ActivityHistory

T0 = 1_765_000_800  # a whole hour (2025-12-06 06:00 UTC)


def history(path: Path, stats: dict[str, int], online: list[int], clock: list[float]) -> ActivityHistory:
    return ActivityHistory(path, stats, lambda: online[0], now=lambda: clock[0])


def test_samples_become_hourly_figures_and_survive_a_restart(tmp_path: Path) -> None:
    stats: dict[str, int] = {}
    online, clock = [3], [float(T0 + 10)]
    activity = history(tmp_path / "activity.json", stats, online, clock)
    stats.update(messages_in=5, logins=2, auth_failures=1, console_login_failures_password=2)
    activity.sample()
    online[0] = 7
    stats["messages_in"] = 9
    clock[0] = T0 + 1800
    activity.sample()
    online[0] = 1
    clock[0] = T0 + 3600 + 5  # the next hour
    stats["messages_in"] = 10
    activity.sample()
    last_two = activity.series(2)
    assert [(h.start, h.sessions, h.messages, h.logins, h.failed_logins) for h in last_two] == [
        (T0, 7, 9, 2, 3), (T0 + 3600, 1, 1, 0, 0)]
    activity.save()

    # a restart: counters start again at zero, the saved hours come back
    again = history(tmp_path / "activity.json", {}, [0], clock)
    again.load()
    assert [h.messages for h in again.series(2)] == [9, 1]
    assert len(again.series(24)) == 24 and again.series(24)[0].messages == 0  # empty hours are zeros
    (day,) = again.days(1)
    assert (day.sessions, day.messages, day.failed_logins) == (7, 10, 3)


def test_old_hours_are_dropped_and_a_damaged_file_is_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "activity.json"
    clock = [float(T0)]
    activity = history(path, {"messages_in": 1}, [0], clock)
    activity.sample()
    activity.save()
    clock[0] = T0 + HOURS_KEPT * 3600  # eight days later
    later = history(path, {}, [0], clock)
    later.load()
    assert later.hours == {}
    path.write_text("{not json", encoding="utf-8")
    broken = history(path, {}, [0], clock)
    broken.load()  # logs a warning and starts afresh
    assert broken.hours == {}
