"""`parlour db migrate` moves a SQLite installation to PostgreSQL; `parlour check config` checks the database."""

from __future__ import annotations

from pathlib import Path

from appliance.storage.api import ArchiveFilter, MucRoom, PubSubItem, RosterItem
from appliance.storage.connect import open_database
from appliance.storage.stores.accounts import AccountStore
from appliance.storage.stores.archive import ArchiveStore
from appliance.storage.stores.blocklist import BlocklistStore
from appliance.storage.stores.kv import KeyValueStore
from appliance.storage.stores.muc import MucStore
from appliance.storage.stores.offline import OfflineStore
from appliance.storage.stores.pubsub import PubSubStore
from appliance.storage.stores.roster import RosterStore
from appliance.storage.workers import Database
from tests.cli.test_cli import parlour
from tests.integration.harness import free_port
from tests.pgserver import PostgresServer

HOST = "example.org"


def _config(tmp_path: Path, url: str = "") -> Path:
    path = tmp_path / "parlour.toml"
    storage = f'[storage]\nurl = "{url}"\n\n' if url else ""
    path.write_text(f'[server]\nstate_dir = "state"\n\n[limits]\nscram_iterations = 4096\n\n{storage}'
                    f'[hosts."{HOST}"]\n')
    return path


async def _fill(db: Database) -> None:
    """A little of everything: the per-user stores, PubSub, the archive, a room."""
    roster, offline, kv = RosterStore(db), OfflineStore(db), KeyValueStore(db)
    await roster.put(HOST, "alice", RosterItem("bob@example.org", "Bob", "both", groups=("Friends",)))
    for n in range(3):
        assert await offline.push(HOST, "alice", b"<message n='%d'/>" % n, 100)
    await kv.put(HOST, "alice", "vcard", "", b"<vCard/>")
    await BlocklistStore(db).add(HOST, "alice", ["spam@example.net"])
    pubsub = PubSubStore(db)
    await pubsub.create_node("alice@example.org", "urn:xmpp:avatar:data", "{}", "alice@example.org")
    await pubsub.put_item("alice@example.org", PubSubItem("urn:xmpp:avatar:data", "a1", "alice@example.org",
                                                          b"<data/>", 1.0), 10)
    await ArchiveStore(db).append("alice@example.org", "m1", "bob@example.org", "", 5.0, b"<message/>")
    await MucStore(db).save(MucRoom("conference.example.org", "lobby", "{}", created_at=2.0))


async def test_db_migrate_copies_every_table_and_checks_the_counts(tmp_path: Path, postgres: PostgresServer) -> None:
    config = _config(tmp_path)
    added = parlour("user", "add", f"alice@{HOST}", "--config", str(config), stdin="a password\n")
    assert added.returncode == 0, added.stdout + added.stderr
    sqlite_path = tmp_path / "state" / "parlour.db"
    db = await open_database(sqlite_path)
    try:
        await _fill(db)
    finally:
        await db.close()
    url = postgres.create_database()

    moved = parlour("db", "migrate", "--from", f"sqlite:{sqlite_path}", "--to", url)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    rows = {line.split()[0]: line.split()[1:] for line in moved.stdout.splitlines()[1:-2]}
    assert rows["accounts"] == ["1", "1"] and rows["offline_messages"] == ["3", "3"]
    assert rows["scram_keys"][0] == rows["scram_keys"][1] != "0"
    assert {"roster_items", "kv", "blocklist", "pubsub_items", "archive", "muc_rooms"} <= rows.keys()
    assert "every count matches" in moved.stdout

    pg = await open_database(url)
    try:
        assert await AccountStore(pg).exists(HOST, "alice")
        assert (await RosterStore(pg).item(HOST, "alice", "bob@example.org")).groups == ("Friends",)  # type: ignore[union-attr]
        assert await KeyValueStore(pg).get(HOST, "alice", "vcard", "") == b"<vCard/>"
        assert await BlocklistStore(pg).items(HOST, "alice") == ["spam@example.net"]
        page = await ArchiveStore(pg).page("alice@example.org", ArchiveFilter(), limit=5)
        assert [m.archive_id for m in page.items] == ["m1"]
        assert await MucStore(pg).room("conference.example.org", "lobby") is not None
        items = await PubSubStore(pg).items("alice@example.org", "urn:xmpp:avatar:data")
        assert [i.payload for i in items] == [b"<data/>"]
        offline = OfflineStore(pg)
        assert await offline.push(HOST, "alice", b"<message n='new'/>", 100)  # ids go on after the copied
        ids = [m.id for m in await offline.fetch(HOST, "alice")]
        assert ids == sorted(ids) and len(set(ids)) == 4
    finally:
        await pg.close()

    again = parlour("db", "migrate", "--from", f"sqlite:{sqlite_path}", "--to", url)
    assert again.returncode == 1 and "already holds data" in again.stdout

    checked = parlour("check", "config", "--config", str(_config(tmp_path, url)))
    assert checked.returncode == 0, checked.stdout
    assert any(line.startswith("ok   database PostgreSQL database") and "(current)" in line
               for line in checked.stdout.splitlines()), checked.stdout


def test_check_config_fails_on_an_unreachable_database(tmp_path: Path) -> None:
    url = f"postgresql://parlour@127.0.0.1:{free_port()}/parlour"
    checked = parlour("check", "config", "--config", str(_config(tmp_path, url)))
    assert checked.returncode == 1
    assert "FAIL database cannot connect" in checked.stdout


def test_check_config_reports_the_sqlite_schema(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert "ok   database SQLite database" in parlour("check", "config", "--config", str(config)).stdout
    assert parlour("user", "add", f"alice@{HOST}", "--config", str(config), stdin="a password\n").returncode == 0
    checked = parlour("check", "config", "--config", str(config))
    assert "schema version" in checked.stdout and "(current)" in checked.stdout


def test_db_migrate_refuses_other_sources() -> None:
    result = parlour("db", "migrate", "--from", "mysql://x", "--to", "postgresql://localhost/x")
    assert (result.returncode, "--from must be sqlite:PATH" in result.stdout) == (2, True)
