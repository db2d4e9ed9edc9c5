"""Noticing certificate files that someone else changed: ``parlour cert renew`` or ``cert import`` run
beside the server, a webroot renewal, an admin copying files. The running server looks every
``WATCH_INTERVAL`` seconds; a look is a few ``stat`` calls, cheaper than any notification API and the
same on every platform.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["WATCH_INTERVAL", "FileWatch"]

WATCH_INTERVAL = 2.0

_Signature = tuple[tuple[str, int, int, int], ...]


class FileWatch:
    """Tells whether any of some files (and the contents of some folders) changed since the last look."""

    def __init__(self, files: Callable[[], Iterable[Path]], folders: Iterable[Path] = ()) -> None:
        self._files = files
        self._folders = tuple(folders)
        self._last = self._signature()

    def changed(self) -> bool:
        """Whether anything changed since the previous call (or since the watch was made)."""
        now = self._signature()
        if now == self._last:
            return False
        self._last = now
        return True

    def _signature(self) -> _Signature:
        out = []
        for path in (*self._folders, *self._files()):  # a folder's mtime moves when a file comes or goes
            try:
                st = path.stat()
            except OSError:
                out.append((str(path), -1, -1, -1))
                continue
            out.append((str(path), st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)
