"""Giving freed memory back to the operating system.

CPython hands large buffers (a 250 KiB stanza, a socket read) to the C allocator; once freed, glibc keeps
most of that heap for reuse instead of returning it, so a burst of traffic leaves the process hundreds
of MiB larger for good (benchmarks/flood.py: 244 MiB after a flood, 86 MiB once trimmed; 82 before).
`malloc_trim(0)` returns the free parts. Elsewhere (musl, macOS, Windows) this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable

TRIM_INTERVAL = 30.0  # seconds between two trims; one costs about a millisecond on an idle heap


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


def give_back() -> bool:
    """Return free heap memory to the operating system; True if something was given back."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


async def give_back_periodically() -> None:
    """The job for a periodic task (util.tasks.TaskSupervisor.every)."""
    give_back()


__all__ = ["TRIM_INTERVAL", "give_back", "give_back_periodically"]
