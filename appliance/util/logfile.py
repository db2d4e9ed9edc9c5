"""A log file that keeps its size bounded while the process runs (the Windows service's parlour.log)."""

from __future__ import annotations

import contextlib
import io
import os
import threading
from pathlib import Path


class RotatingLogFile(io.TextIOBase):
    """Text appended to `path`, line-buffered; once the file passes `max_bytes`, it becomes `<name>.1`
    (replacing the previous one) and writing goes on in a fresh file. A service runs for months without
    a restart, so rotating only at start let the log grow without bound."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        super().__init__()
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_size > max_bytes:
                self._move_aside()
        self._file = self._open()

    def _open(self) -> io.TextIOWrapper:
        file = open(self.path, "a", encoding="utf-8", errors="backslashreplace", buffering=1)  # noqa: SIM115
        self._size = file.tell()
        return file

    def _move_aside(self) -> bool:
        try:
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        except OSError:
            return False  # e.g. held open without delete sharing on Windows: try again later
        return True

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            written = self._file.write(text)
            self._size += len(text.encode("utf-8", "backslashreplace"))
            if self._size > self.max_bytes:
                self._file.close()
                moved = self._move_aside()
                self._file = self._open()
                if not moved:
                    self._size = 0  # not at every line: again after another max_bytes
            return written

    def flush(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        with self._lock:
            self._file.close()
        super().close()
