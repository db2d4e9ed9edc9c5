"""The last log lines kept in memory for the admin console's log page."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

CAPACITY = 2000


@dataclass(frozen=True, slots=True)
class LogLine:
    time: float
    level: str
    logger: str
    message: str

    def when(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.time))


class RingBufferHandler(logging.Handler):
    """Keeps the newest `capacity` formatted records; older ones fall off."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        super().__init__(logging.DEBUG)
        self._lines: deque[LogLine] = deque(maxlen=capacity)
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                message += f" ({record.exc_info[1]!r})"
            with self._lock2:
                self._lines.append(LogLine(record.created, record.levelname, record.name, message))
        except Exception:
            self.handleError(record)

    def lines(self, *, contains: str = "", min_level: str = "", limit: int = 500) -> list[LogLine]:
        """Newest last; `contains` filters case-insensitively on logger and message."""
        floor = logging.getLevelName(min_level.upper()) if min_level else 0
        floor = floor if isinstance(floor, int) else 0
        needle = contains.lower()
        with self._lock2:
            lines = list(self._lines)
        out = [line for line in lines
               if logging.getLevelName(line.level) >= floor
               and (not needle or needle in line.message.lower() or needle in line.logger.lower())]
        return out[-limit:]


_installed: RingBufferHandler | None = None


def install() -> RingBufferHandler:
    """The process's buffer, attached to the root logger once (INFO and above reach it by default)."""
    global _installed
    root = logging.getLogger()
    if _installed is None:
        _installed = RingBufferHandler()
    if _installed not in root.handlers:
        root.addHandler(_installed)
    return _installed


__all__ = ["LogLine", "RingBufferHandler", "install"]
