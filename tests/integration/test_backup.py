"""`parlour backup` beside a running server taking writes, `parlour restore` onto a fresh install, and the
old users logging in there with their passwords to find their roster, offline messages, archive and upload."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import stat
import tarfile
from pathlib import Path

import aiohttp

from tests.integration.harness import Client, free_port
from tests.integration.process import TIMEOUT, ServerProcess, parlour
from tests.integration.stanzas import iq, raw_messages

DOMAIN = "localhost"
PASSWORD = "correct horse"
MAM = "urn:xmpp:mam:2"
UPLOAD = "urn:xmpp:http:upload:0"
FORWARD = "urn:xmpp:forward:0"


def write_config(folder: Path, c2s: int, http: int, domain: str = DOMAIN) -> Path:
    """A loopback-only parlour.toml serving `domain` (the migration tests use it too)."""
    folder.mkdir()
    config = folder / "parlour.toml"
    config.write_text(
        '[server]\nstate_dir = "state"\n\n'
        f'[c2s]\ninterfaces = ["127.0.0.1"]\nport = {c2s}\ndirect_tls_port = 0\n\n'
        "[limits]\nscram_iterations = 4096\nauth_failure_delay = 0\n\n"
        f'[http]\ninterfaces = ["127.0.0.1"]\nport = {http}\nhttps = false\n\n'
        f'[modules.upload]\nurl_base = "http://127.0.0.1:{http}"\n\n'
        f'[hosts."{domain}"]\n'
    )
    return config


async def connect(config: Path, user: str, port: int) -> Client:
    client = Client(f"{user}@{DOMAIN}/backup", PASSWORD, config.parent / "state" / "certs" / "ca.pem")
    client.connect(host="127.0.0.1", port=port)
    await asyncio.wait_for(client.started.wait(), TIMEOUT)
    return client


async def test_backup_of_a_running_server_restores_onto_a_fresh_install(tmp_path: Path) -> None:
    c2s, http = free_port(), free_port()
    old = write_config(tmp_path / "old", c2s, http)
    for user in ("alice", "bob"):
        added = parlour("user", "add", f"{user}@{DOMAIN}", "--config", str(old), stdin=PASSWORD + "\n")
        assert added.returncode == 0, added.stderr
    server = ServerProcess(old, tmp_path / "old.log")
    await server.start()
    try:
        alice = await connect(old, "alice", c2s)
        await alice.update_roster(f"bob@{DOMAIN}", name="Bob", groups=["Friends"])
        # An upload, kept in the state folder.
        data = "minutes of the meeting \N{SNOWMAN}\n".encode() * 50
        reply = await iq(alice, "get", f"<request xmlns='{UPLOAD}' filename='minutes.txt' size='{len(data)}' "
                         "content-type='text/plain'/>", to=f"upload.{DOMAIN}")
        slot = reply.find(f"{{{UPLOAD}}}slot")
        put, get = slot.find(f"{{{UPLOAD}}}put").get("url"), slot.find(f"{{{UPLOAD}}}get").get("url")
        async with aiohttp.ClientSession() as session, session.put(
                put, data=data, headers={"Content-Type": "text/plain"}) as resp:
            assert resp.status == 201
        # Bob is offline: alice's messages become offline messages (and archive entries) while the backup
        # is taken by another process; writes go on before, during and after it.
        bodies = [f"note {i:04d}" for i in range(5000)]  # a bound; the writes stop soon after the backup
        sent = 0
        backup_done = asyncio.Event()

        async def write_on() -> None:
            """Write until the backup is over, and a little beyond: however slow the machine, writes run
            before, during and after it."""
            nonlocal sent
            after = 0
            for body in bodies:
                alice.send_message(mto=f"bob@{DOMAIN}", mbody=body, mtype="chat")
                sent += 1
                if sent % 20 == 0:  # acknowledged means committed: each ping follows the writes before it
                    await alice.plugin["xep_0199"].send_ping(DOMAIN, timeout=TIMEOUT)
                    if backup_done.is_set():
                        after += 1
                        if after == 2:
                            return

        writer = asyncio.create_task(write_on())
        while sent < 40:
            await asyncio.sleep(0.01)
        archive = tmp_path / "parlour.backup.tar.gz"
        made = await asyncio.to_thread(parlour, "backup", "--config", str(old), "--output", str(archive))
        backup_done.set()
        await writer
        assert made.returncode == 0, made.stderr
        assert f"backup written to {archive}" in made.stdout
        assert sent < len(bodies), "the writes outran their bound"
        alice.disconnect()
    finally:
        await server.stop()

    # The file and every member in it are the server user's only.
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert {"manifest.json", "parlour.toml", "state/parlour.db", "state/certs/ca.pem", "state/secret.key"} \
        <= members.keys()
    assert any(name.startswith("state/uploads/") and m.isfile() for name, m in members.items())
    assert all(m.mode == (0o700 if m.isdir() else 0o600) for m in members.values())
    assert not any(name.endswith(("-wal", "-shm")) for name in members)
    assert manifest["format"] == "parlour-backup" and manifest["hosts"] == [DOMAIN]
    assert manifest["schema_version"] >= 4 and manifest["counts"]["accounts"] == 2
    saved = manifest["counts"]["offline messages"]
    assert 40 <= saved < sent  # the copy is of a moment in the middle of the writes

    # A fresh install: nothing but its folder. Restore, and refuse to do it twice.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    config = fresh / "parlour.toml"
    restored = parlour("restore", str(archive), "--config", str(config))
    assert restored.returncode == 0, restored.stderr
    assert config.read_text() == old.read_text()
    again = parlour("restore", str(archive), "--config", str(config))
    assert again.returncode == 1 and "already holds accounts" in again.stderr and "--force" in again.stderr

    server = ServerProcess(config, tmp_path / "fresh.log")
    await server.start()
    try:
        bob = await connect(config, "bob", c2s)  # the old password
        messages = raw_messages(bob)
        bob.send_presence()  # the offline messages come with initial presence
        received = [(await bob.next_message(TIMEOUT))["body"] for _ in range(saved)]
        # One consistent moment: exactly the first `saved` messages, in order, none missing in between.
        assert received == bodies[:saved]
        alice = await connect(config, "alice", c2s)
        roster = await alice.get_roster()
        item = roster["roster"]["items"][f"bob@{DOMAIN}"]
        assert item["name"] == "Bob" and item["groups"] == ["Friends"]
        while not messages.empty():
            messages.get_nowait()
        found = raw_messages(alice)
        fin = await iq(alice, "set", f"<query xmlns='{MAM}' queryid='q'><set xmlns='http://jabber.org/protocol/rsm'>"
                       "<max>5</max></set></query>")
        assert fin.find(f"{{{MAM}}}fin") is not None
        archived = []
        while not found.empty():
            result = found.get_nowait().find(f"{{{MAM}}}result")
            if result is not None:
                archived.append(result.findtext(f"{{{FORWARD}}}forwarded/{{jabber:client}}message/"
                                                "{jabber:client}body"))
        assert archived == bodies[:5]
        async with aiohttp.ClientSession() as session, session.get(get) as resp:
            assert resp.status == 200 and await resp.read() == data
        for client in (alice, bob):
            with contextlib.suppress(Exception):
                client.disconnect()
    finally:
        await server.stop()


def test_restore_explains_what_is_wrong(tmp_path: Path) -> None:
    config = tmp_path / "parlour.toml"
    missing = parlour("restore", str(tmp_path / "nothing.tar.gz"), "--config", str(config))
    assert missing.returncode == 1 and "no such file" in missing.stderr
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a backup")
    assert "not a Parlour backup" in parlour("restore", str(junk), "--config", str(config)).stderr
    newer = tmp_path / "newer.tar.gz"
    manifest = {"format": "parlour-backup", "format_version": 1, "parlour_version": "99.0",
                "schema_version": 9999, "created": "2030-01-01T00:00:00+00:00", "hosts": [], "counts": {}}
    with tarfile.open(newer, "w:gz") as tar:
        body = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    refused = parlour("restore", str(newer), "--config", str(config))
    assert refused.returncode == 1 and "schema 9999" in refused.stderr and "newer Parlour" in refused.stderr
    assert not config.exists() and not (tmp_path / "state").exists()
