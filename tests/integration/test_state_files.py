"""State files are private whatever the umask: the state folder 0700, the database (and its WAL and
shared-memory files), secret.key and the token file 0600; a folder left open by an older version is
closed at the next start."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import start_harness


@pytest.fixture
def lax_umask() -> Iterator[None]:
    """The umask of a shell where the server is run by hand (group and others may read)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("lax_umask")
async def test_state_files_are_private_regardless_of_umask(tmp_path: Path) -> None:
    state = tmp_path / "state"
    harness = await start_harness(state)
    try:
        tokens = harness.server.services.tokens
        await tokens.create("admin@localhost", "test")  # writes the token file
        await harness.user("alice")  # the database has written something (WAL, shared memory)
        assert mode(state) == 0o700
        files = ["parlour.db", "parlour.db-wal", "parlour.db-shm", "secret.key", "web-tokens.json"]
        assert {name: oct(mode(state / name)) for name in files} == dict.fromkeys(files, "0o600")
    finally:
        await harness.close()


@pytest.mark.usefixtures("lax_umask")
async def test_a_state_folder_left_open_is_closed_at_start(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = await start_harness(state)
    await first.close()
    os.chmod(state, 0o755)  # as an older version left it
    os.chmod(state / "parlour.db", 0o644)
    second = await start_harness(state)
    try:
        assert mode(state) == 0o700 and mode(state / "parlour.db") == 0o600
    finally:
        await second.close()
