"""`parlour backup` and `parlour restore` of an install on PostgreSQL: the backup is taken beside the running
server (one snapshot of the database, as an SQLite copy inside the file), the database is lost (dropped and
created empty), the backup restores into it, and the users log in to find their contacts and messages."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import psycopg

from tests.integration.harness import free_port
from tests.integration.process import TIMEOUT, ServerProcess, parlour
from tests.integration.test_backup import DOMAIN, PASSWORD, connect, write_config
from tests.pgserver import PostgresServer


async def test_backup_and_restore_of_a_postgresql_install(tmp_path: Path, postgres: PostgresServer) -> None:
    url = postgres.create_database()
    c2s = free_port()
    old = write_config(tmp_path / "old", c2s, free_port())
    old.write_text(old.read_text() + f'\n[storage]\nurl = "{url}"\n')
    for user in ("alice", "bob"):
        added = parlour("user", "add", f"{user}@{DOMAIN}", "--config", str(old), stdin=PASSWORD + "\n")
        assert added.returncode == 0, added.stderr
    server = ServerProcess(old, tmp_path / "old.log")
    await server.start()
    try:
        alice = await connect(old, "alice", c2s)
        await alice.update_roster(f"bob@{DOMAIN}", name="Bob", groups=["Friends"])
        for i in range(5):
            alice.send_message(mto=f"bob@{DOMAIN}", mbody=f"note {i}", mtype="chat")
        await alice.plugin["xep_0199"].send_ping(DOMAIN, timeout=TIMEOUT)  # the messages are committed
        archive = tmp_path / "pg.backup.tar.gz"
        made = parlour("backup", "--config", str(old), "--output", str(archive))  # beside the running server
        assert made.returncode == 0, made.stderr
        alice.disconnect()
    finally:
        await server.stop()
    assert not (tmp_path / "old" / "state" / "parlour.db").exists()  # the data lives in PostgreSQL
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert "state/parlour.db" in tar.getnames()
    assert manifest["counts"]["accounts"] == 2 and manifest["counts"]["offline messages"] == 5
    assert manifest["counts"]["roster items"] == 1

    # The database is lost: created again, empty. A fresh folder gets the backup.
    with psycopg.connect(url, autocommit=True) as conn:
        schema = conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    config = fresh / "parlour.toml"
    restored = parlour("restore", str(archive), "--config", str(config))
    assert restored.returncode == 0, restored.stderr
    assert not (fresh / "state" / "parlour.db").exists()  # restored into PostgreSQL, not into a file
    again = parlour("restore", str(archive), "--config", str(tmp_path / "other.toml"))
    assert again.returncode == 1 and "already holds data" in again.stderr  # never over a database in use

    server = ServerProcess(config, tmp_path / "fresh.log")
    await server.start()
    try:
        bob = await connect(config, "bob", c2s)  # the old password
        bob.send_presence()
        assert [(await bob.next_message(TIMEOUT))["body"] for _ in range(5)] == [f"note {i}" for i in range(5)]
        alice = await connect(config, "alice", c2s)
        item = (await alice.get_roster())["roster"]["items"][f"bob@{DOMAIN}"]
        assert item["name"] == "Bob" and item["groups"] == ["Friends"]
        for client in (alice, bob):
            client.disconnect()
    finally:
        await server.stop()
