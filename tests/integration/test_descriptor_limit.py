"""A real server under a low open-file limit (RLIMIT_NOFILE set in the child): when connections use up
the descriptors it says so once, with the fix, keeps serving the connections it has and accepts again
once some close; `parlour check config` warns about a limit below limits.max_connections."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DOMAIN = "localhost"
LIMIT = 96  # the child's soft RLIMIT_NOFILE: a few dozen descriptors are taken before any client comes
WARNING = "out of file descriptors"
HEADER = (f"<?xml version='1.0'?><stream:stream to='{DOMAIN}' xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>").encode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def low_limit(soft: int) -> Callable[[], None]:
    def apply() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return apply


def environment(loop: str = "uvloop") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PARLOUR_DEV"}
    env["PYTHONPATH"] = str(ROOT)
    env["PARLOUR_EVENT_LOOP"] = loop
    return env


def write_config(folder: Path, *, port: int, max_connections: int = 20_000) -> Path:
    config = folder / "parlour.toml"
    config.write_text(
        '[server]\nstate_dir = "state"\n\n'
        f'[c2s]\ninterfaces = ["127.0.0.1"]\nport = {port}\ndirect_tls_port = 0\n\n'
        f"[limits]\nmax_connections = {max_connections}\nmax_connections_per_ip = 100000\n\n"
        f'[http]\nenabled = false\n\n[hosts."{DOMAIN}"]\n'
    )
    return config


@pytest.fixture(params=["uvloop", "asyncio"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """`parlour run` with soft RLIMIT_NOFILE = LIMIT, on uvloop (libuv drops what it cannot accept,
    silently) and on asyncio's loop (which retries every second, logging each failure)."""
    port = free_port()
    config = write_config(tmp_path, port=port)
    log = tmp_path / "server.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "appliance", "run", "--config", str(config)], stdout=subprocess.PIPE,
            stderr=err, cwd=ROOT, env=environment(request.param), preexec_fn=low_limit(LIMIT),
        )  # fmt: skip
    assert process.stdout is not None
    ready = threading.Event()

    def drain() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith(b"Parlour is running"):
                ready.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        assert ready.wait(60), log.read_text()
        yield port, log
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def answered(port: int) -> socket.socket | None:
    """A connection that got the server's stream header back, or None (not accepted, or dropped)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(1.5)
    try:
        sock.sendall(HEADER)
        data = b""
        while b"<stream:stream" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        data = b""
    if b"<stream:stream" in data:
        return sock
    sock.close()
    return None


def fill(port: int, held: list[socket.socket]) -> None:
    """Open connections until the server stops answering them."""
    for _ in range(LIMIT):
        sock = answered(port)
        if sock is None:
            return
        held.append(sock)
    raise AssertionError(f"{LIMIT} connections were all served under a limit of {LIMIT} descriptors")


def warnings(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if WARNING in line]


def test_running_out_of_descriptors_is_logged_once_and_the_server_recovers(server: tuple[int, Path]) -> None:
    port, log = server
    held: list[socket.socket] = []
    try:
        fill(port, held)
        assert 10 < len(held) < LIMIT
        deadline = time.monotonic() + 10
        while not warnings(log) and time.monotonic() < deadline:
            time.sleep(0.1)
        found = warnings(log)
        assert len(found) == 1, log.read_text()
        assert "WARNING" in found[0] and f"limit {LIMIT}" in found[0] and "LimitNOFILE" in found[0]
        assert "Traceback" not in log.read_text()

        # The connections it has keep working, and it accepts again once some close.
        assert held[0].send(b"<presence/>") > 0
        for sock in held[:10]:
            sock.close()
        del held[:10]
        deadline = time.monotonic() + 10
        again = None
        while again is None and time.monotonic() < deadline:
            again = answered(port)
        assert again is not None, "no connection served after descriptors were freed"
        held.append(again)

        # Running out a second time adds no second warning.
        fill(port, held)
        time.sleep(1.5)
        assert len(warnings(log)) == 1, log.read_text()
    finally:
        for sock in held:
            sock.close()


def check(config: Path, soft: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", "check", "config", "--config", str(config)], capture_output=True,
        text=True, cwd=ROOT, env=environment(), timeout=120, preexec_fn=low_limit(soft),
    )  # fmt: skip


def test_check_config_warns_when_the_open_file_limit_is_below_max_connections(tmp_path: Path) -> None:
    config = write_config(tmp_path, port=free_port(), max_connections=2_000)
    low = check(config, 1024)
    assert low.returncode == 0, low.stdout + low.stderr  # a warning, not a failure
    lines = [line for line in low.stdout.splitlines() if line.startswith("warn files")]
    assert len(lines) == 1, low.stdout
    assert "open-file limit 1024" in lines[0] and "limits.max_connections = 2000" in lines[0]
    assert "LimitNOFILE" in low.stdout and "at least 2512" in low.stdout

    enough = check(config, 4096)
    assert enough.returncode == 0, enough.stdout + enough.stderr
    assert "ok   files open-file limit 4096 covers limits.max_connections = 2000" in enough.stdout
    assert "warn files" not in enough.stdout
