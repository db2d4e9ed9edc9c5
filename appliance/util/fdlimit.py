"""The open-file (descriptor) limit: what the server needs, and one clear warning when it runs out.

Every connection holds a descriptor. When the soft RLIMIT_NOFILE is reached, accept() fails with EMFILE:
asyncio then logs a traceback per attempt, and uvloop (libuv) silently drops the waiting connections.
Both look like a server that stopped answering; this module turns them into one WARNING with the fix.
"""

from __future__ import annotations

import errno
import logging
import sys
from typing import Any

log = logging.getLogger(__name__)

# Descriptors besides client connections: listeners, the database (file, WAL, shared memory per
# connection), logs, certificates being read, outgoing s2s and DNS sockets, uploads being written.
HEADROOM = 512
OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)
# The message asyncio's selector loop passes to the exception handler when accept() fails for resources.
ACCEPT_FAILED = "socket.accept() out of system resource"
FIX = ("raise the limit: LimitNOFILE= in the systemd unit (`systemctl edit parlour`), `ulimit -n` in the "
       "shell that starts parlour, or lower limits.max_connections")


def soft_limit() -> int | None:
    """The process's soft RLIMIT_NOFILE, or None where there is none (Windows: sockets are handles)."""
    if sys.platform == "win32":
        return None
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def needed(max_connections: int) -> int:
    """The soft limit a server with `max_connections` should have."""
    return max_connections + HEADROOM


class DescriptorWatch:
    """Warns once when the server runs out of descriptors; later events are logged at DEBUG only."""

    __slots__ = ("_warned", "limit")

    def __init__(self, limit: int | None = None) -> None:
        self.limit = soft_limit() if limit is None else limit
        self._warned = False

    def accepted(self, fd: int, connections: int) -> None:
        """A connection was accepted on descriptor `fd`. Descriptors are allocated lowest first, so
        `limit - 1` means every descriptor is now taken and the next accept() will fail: uvloop never
        reports that failure, so this is where it shows."""
        if self.limit is not None and fd >= self.limit - 1:
            self.exhausted(f"{connections} connections open")

    def exhausted(self, detail: str) -> None:
        if self._warned:
            log.debug("out of file descriptors again (%s)", detail)
            return
        self._warned = True
        log.warning("out of file descriptors (limit %s, %s): new connections fail until some close; %s",
                    self.limit if self.limit is not None else "unknown", detail, FIX)

    def exception_handler(self, loop: Any, context: dict[str, Any]) -> None:
        """asyncio loop exception handler: accept() failures for want of descriptors become the one
        warning; everything else goes to the loop's default handler as before."""
        exc = context.get("exception")
        if context.get("message") == ACCEPT_FAILED and isinstance(exc, OSError) and exc.errno in OUT_OF_DESCRIPTORS:
            self.exhausted(f"accept() failed: {exc.strerror}")
            return
        loop.default_exception_handler(context)
