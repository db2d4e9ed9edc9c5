"""A real Redis server for tests: Debian's `redis-server`, a temporary folder, a loopback port.

It keeps an append-only file (fsync always), so a restart (`restart()`) comes back with what it held, as a
production Redis with persistence does; `stop()` and `start()` let a test take it away for a while.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.local_server import end, launch, serving


def binary() -> str | None:
    return shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """One redis-server process on 127.0.0.1:`port` keeping its files in `folder`."""

    port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = launch(
            [binary() or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
             "--protected-mode", "yes"],
            self.folder, "redis.log", lambda: _answers(self.port), "redis-server", timeout=20)

    def stop(self) -> None:
        """SIGTERM: Redis finishes its append-only file and exits, as `systemctl restart` does."""
        end(self.process, timeout=20)
        self.process = None

    def restart(self, *, empty: bool = False) -> None:
        """Stop and start again; `empty`: with its files deleted, as a Redis without persistence comes back."""
        self.stop()
        if empty:
            for path in self.folder.iterdir():
                if path.name != "redis.log":
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
        self.start()


@contextlib.contextmanager
def running_redis() -> Iterator[RedisServer]:
    with serving(RedisServer(_free_port(), Path(tempfile.mkdtemp(prefix="parlour-redis-")))) as server:
        yield server
