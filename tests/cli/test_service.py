"""The platform-neutral parts of `parlour service` (the Windows service itself runs under Wine in
tests/packaging/windows_test.sh): the wizard URL, the service log, stopping a loop from another thread."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from appliance.cli import service
from appliance.services.setup_token import TOKEN_FILE
from tests.cli.test_cli import parlour


def test_wizard_url_carries_the_token_while_setup_is_open(tmp_path: Path) -> None:
    assert service.wizard_url(tmp_path, 5280) == "http://localhost:5280/setup"
    (tmp_path / TOKEN_FILE).write_text("abc_DEF-123\n")
    assert service.wizard_url(tmp_path, 5280) == "http://localhost:5280/setup?token=abc_DEF-123"


def test_log_is_appended_and_kept_once_when_too_big(tmp_path: Path) -> None:
    path = tmp_path / "data" / service.LOG_NAME
    with service.open_log(path, max_bytes=10) as log:
        log.write("first start\n")
    with service.open_log(path, max_bytes=10) as log:  # above 10 bytes: moved aside
        log.write("second\n")
    assert path.read_text() == "second\n"
    assert path.with_name(service.LOG_NAME + ".1").read_text() == "first start\n"


def test_loop_watcher_stops_asyncio_run_from_another_thread() -> None:
    """What SvcStop does: cancel the tasks of the loop `asyncio.run` made in the service thread."""
    watcher = service.LoopWatcher()
    outcome: list[str] = []

    async def serve_forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            outcome.append("cleaned up")

    def service_thread() -> None:
        asyncio.set_event_loop_policy(watcher)
        try:
            asyncio.run(serve_forever())
        except asyncio.CancelledError:
            outcome.append("cancelled")
        finally:
            asyncio.set_event_loop_policy(None)

    thread = threading.Thread(target=service_thread)
    thread.start()
    assert watcher.ready.wait(10)
    while not outcome and thread.is_alive():
        watcher.cancel_all()
        thread.join(0.1)
    thread.join(10)
    assert outcome == ["cleaned up", "cancelled"]


def test_service_command_is_windows_only() -> None:
    result = parlour("service", "run")
    assert result.returncode == 2
    assert "Windows only" in result.stderr
