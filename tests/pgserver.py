"""A real PostgreSQL server for tests: Debian's binaries, a temporary cluster, a loopback port.

`initdb` makes a cluster in a temporary folder (trust authentication: it listens on 127.0.0.1 and a
socket in that folder only); `postgres` serves it until the test session ends. PostgreSQL refuses to run
as root, so as root both run as the `postgres` user (setpriv) in a folder that user owns.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from tests.local_server import end, launch, serving

SUPERUSER = "parlour"


def binaries() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin that has initdb and postgres, if any."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A running test cluster; `create_database()` gives each test a fresh, empty one; `stop()` and `start()`
    take the server away for a while (fault tests), on the same port and data."""

    port: int
    folder: Path
    _names: Iterator[int] = field(default_factory=itertools.count)
    command: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> str:
        """A URL whose tables land in a new, empty schema (its search_path): as good as a new database
        for Parlour, and far quicker to make than CREATE DATABASE."""
        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.url()}?options=-csearch_path%3D{name}"

    def start(self) -> None:
        self.process = launch(self.command, self.folder, "postgres.log", self._answers, "postgres")

    def _answers(self) -> bool:
        try:
            psycopg.connect(self.url(), connect_timeout=2).close()
            return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        """Fast shutdown: clients connected (a server a failed test left open, say) are cut off too."""
        end(self.process, signal.SIGINT)
        self.process = None


@contextlib.contextmanager
def running_postgres(bin_dir: Path) -> Iterator[PostgresServer]:
    """initdb + postgres on a free loopback port; stopped (fast shutdown) and removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="parlour-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        prefix = ["setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--init-groups"]
    data = folder / "data"
    subprocess.run(
        [*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
         "--no-locale"],
        check=True, capture_output=True, cwd=folder,
    )
    port = _free_port()
    command = [*prefix, str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
               "-k", str(folder), "-c", "fsync=on", "-c", "max_connections=200"]
    with serving(PostgresServer(port, folder, command=command)) as pg:
        yield pg


@contextlib.contextmanager
def postgres_for_tests() -> Iterator[PostgresServer]:
    """`running_postgres` on Debian's binaries; the test is skipped when they are not installed."""
    bin_dir = binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL not installed (apt-get install postgresql)")
    with running_postgres(bin_dir) as server:
        yield server
