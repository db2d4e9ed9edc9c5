"""What the throwaway servers of the tests (tests/pgserver.py, tests/redisserver.py) share: a process started
with its log in its folder, waited for until it answers, stopped by a signal (killed past a timeout), and
the folder removed at the end."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar


class Startable(Protocol):
    folder: Path

    def start(self) -> None: ...

    def stop(self) -> None: ...


S = TypeVar("S", bound=Startable)


def launch(command: list[str], folder: Path, log_name: str, answers: Callable[[], bool], what: str,
           timeout: float = 30) -> subprocess.Popen[bytes]:
    """Start `command` in `folder` (output appended to `log_name` there) and wait until `answers()`."""
    log_path = folder / log_name
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    deadline = time.monotonic() + timeout
    while not answers():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start: {log_path.read_text(errors='replace')}")
        time.sleep(0.05)
    return process


def end(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Send `sig` and wait; kill the process if it is still there after `timeout` seconds."""
    if process is None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def serving(server: S) -> Iterator[S]:
    """`server` started for the block, then stopped and its folder removed."""
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)
