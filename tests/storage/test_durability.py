"""Acknowledged means durable: SIGKILL a writer mid-stream, every acknowledged message survives (both engines)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from appliance.storage.stores.offline import OfflineStore
from tests.storage.conftest import OpenDb

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

REPO = Path(__file__).resolve().parents[2]

WRITER = """
import asyncio, itertools, sys
from appliance.storage.api import ScramKeys
from appliance.storage.connect import open_database
from appliance.storage.stores.accounts import AccountStore
from appliance.storage.stores.offline import OfflineStore

async def main(location):
    db = await open_database(location)
    await AccountStore(db).create("a.example", "romeo", [ScramKeys("SHA-256", b"s" * 16, 1, b"k", b"k")])
    offline = OfflineStore(db)
    numbers = itertools.count()

    async def pusher():
        while True:
            n = next(numbers)
            assert await offline.push("a.example", "romeo", b"<message id='%d'/>" % n, 10**9)
            sys.stdout.write(f"{n}\\n")
            sys.stdout.flush()

    await asyncio.gather(*(pusher() for _ in range(16)))

asyncio.run(main(sys.argv[1]))
"""


async def test_acknowledged_offline_messages_survive_sigkill(location: str, open_db: OpenDb) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        location,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    acknowledged: set[int] = set()
    try:
        async with asyncio.timeout(60):
            while len(acknowledged) < 400:
                line = await proc.stdout.readline()
                if not line:
                    pytest.fail(f"writer exited early: {(await proc.stderr.read()).decode()}")
                acknowledged.add(int(line))
    finally:
        proc.send_signal(signal.SIGKILL)  # mid-stream: writes are still queued and in flight
    rest, _ = await proc.communicate()
    acknowledged.update(int(line) for line in rest.split())  # printed before the kill: also acknowledged
    assert proc.returncode == -signal.SIGKILL

    db = await open_db()
    stored = {int(m.stanza.split(b"'")[1]) for m in await OfflineStore(db).fetch("a.example", "romeo")}
    assert acknowledged <= stored, f"lost acknowledged messages: {sorted(acknowledged - stored)[:10]}"
