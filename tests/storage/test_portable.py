"""XEP-0227 import and export (services/portable.py) over the real stores, on SQLite and PostgreSQL:
credentials that log in, rosters, vCards, private XML, offline messages, PEP and archives; importing twice
adds nothing; a failing user rolls back alone; an export imports into a fresh database as it was."""

from __future__ import annotations

import base64
from pathlib import Path

from lxml import etree

from appliance.catalog import open_stores
from appliance.core.accounts import AccountService
from appliance.modules import presence, private, vcard
from appliance.modules.pubsub.config import NodeConfig
from appliance.services import portable
from appliance.services.portable import PortableData
from appliance.storage.api import ArchiveFilter
from appliance.storage.connect import open_database
from appliance.storage.workers import Database
from appliance.xmpp.jid import JID
from appliance.xmpp.sasl import scram

HOST = "old.example"
PASSWORD = "alice's old password"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _scram(password: str, *, twice: bool = False) -> str:
    """SCRAM-SHA-1 credentials as Prosody writes them, or base64'd twice as ejabberd does."""
    salt = b"0123456789abcdef"
    stored, server = scram.derive_keys(password, "SHA-1", salt, 4096)
    enc = (lambda b: _b64(_b64(b).encode())) if twice else _b64
    return (f"<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'><iter-count>4096</iter-count>"
            f"<salt>{enc(salt)}</salt><server-key>{enc(server)}</server-key><stored-key>{enc(stored)}</stored-key>"
            "</scram-credentials>")


EXPORT = f"""<?xml version='1.0' encoding='UTF-8'?>
<server-data xmlns='urn:xmpp:pie:0'><host jid='{HOST}'>
<user name='alice'>{_scram(PASSWORD, twice=True)}
 <query xmlns='jabber:iq:roster' ver='7'>
  <item jid='bob@{HOST}' name='Bobby' subscription='both'><group>Friends</group><group>Work</group></item>
  <item jid='carol@elsewhere.example' subscription='to' ask='subscribe'/>
  <item jid='alice@{HOST}' subscription='both'/>
 </query>
 <presence xmlns='jabber:client' from='dave@elsewhere.example' type='subscribe'/>
 <vCard xmlns='vcard-temp'><FN>Alice Liddell</FN></vCard>
 <query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'><conference jid='tea@muc.{HOST}'/></storage>
 </query>
 <offline-messages><message xmlns='jabber:client' from='bob@{HOST}/x' to='alice@{HOST}' type='chat'>
  <delay xmlns='urn:xmpp:delay' stamp='2026-01-02T03:04:05Z'/><body>while you were out</body></message>
 </offline-messages>
 <pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='urn:xmpp:avatar:metadata'>
  <x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#node_config</value></field>
  <field var='pubsub#access_model'><value>open</value></field><field var='pubsub#max_items'><value>1</value></field>
  <field var='pubsub#persist_items'><value>1</value></field></x></configure></pubsub>
 <pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:avatar:metadata'>
  <item id='abc'><metadata xmlns='urn:xmpp:avatar:metadata'/></item></items></pubsub>
 <archive xmlns='urn:xmpp:pie:0#mam'><result xmlns='urn:xmpp:mam:2' id='m1'><forwarded xmlns='urn:xmpp:forward:0'>
  <delay xmlns='urn:xmpp:delay' stamp='2025-12-24T18:00:00Z'/>
  <message xmlns='jabber:client' from='alice@{HOST}/home' to='bob@{HOST}' type='chat'><body>merry</body></message>
 </forwarded></result></archive>
 <query xmlns='jabber:iq:privacy'/>
</user>
<user name='bob' password='bob plain password'/>
<user name='nopass'/>
</host><host jid='not-here.example'><user name='zed' password='whatever1'/></host></server-data>
"""


async def _service(db: Database, tmp_path: Path) -> PortableData:
    stores = open_stores(db, tmp_path)
    return PortableData(stores.accounts, stores.transfer, (HOST,), iterations=64)


def _write(tmp_path: Path, text: str, name: str = "export.xml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


async def test_import_carries_everything_and_twice_adds_nothing(db: Database, tmp_path: Path) -> None:
    service = await _service(db, tmp_path)
    stores = open_stores(db, tmp_path)
    report = await service.import_path(_write(tmp_path, EXPORT))
    outcome = {u.jid: u for u in report.users}
    assert {j: u.status for j, u in outcome.items()} == {
        f"alice@{HOST}": "created", f"bob@{HOST}": "created", f"nopass@{HOST}": "skipped",
        "zed@not-here.example": "skipped"}
    alice = outcome[f"alice@{HOST}"]
    counts = alice.counts
    assert (counts.roster, counts.documents, counts.offline, counts.pep_nodes, counts.pep_items, counts.archive) == (
        2, 3, 1, 1, 1, 1)  # documents: vCard, bookmarks, dave's request
    assert any("privacy" in note for note in alice.notes)  # reported, not silently dropped
    assert any("SCRAM-SHA-1 only" in note for note in alice.notes)
    assert any("not a host of this server" in n for n in outcome["zed@not-here.example"].notes)
    assert any("no password" in n for n in outcome[f"nopass@{HOST}"].notes)

    accounts = AccountService(stores.accounts, iterations=64)
    # ejabberd's twice-encoded SCRAM-SHA-1 keys are decoded: the old password is proven with them.
    keys = await accounts.scram_keys(JID.parse(f"alice@{HOST}"), "SHA-1")
    assert keys is not None
    assert (keys.stored_key, keys.server_key) == scram.derive_keys(PASSWORD, "SHA-1", keys.salt, keys.iterations)
    assert await accounts.verify_plain(JID.parse(f"bob@{HOST}"), "bob plain password")  # cleartext: every hash
    assert await accounts.scram_keys(JID.parse(f"bob@{HOST}"), "SHA-256") is not None

    roster = {i.contact: i for i in await stores.roster.items(HOST, "alice")}
    assert set(roster) == {f"bob@{HOST}", "carol@elsewhere.example"}  # the self-contact is left out
    assert roster[f"bob@{HOST}"].groups == ("Friends", "Work") and roster[f"bob@{HOST}"].name == "Bobby"
    assert roster["carol@elsewhere.example"].ask and roster["carol@elsewhere.example"].subscription == "to"
    card = await stores.kv.get(HOST, "alice", vcard.STORE, vcard.KEY)
    assert card is not None and b"Alice Liddell" in card
    assert await stores.kv.get(HOST, "alice", private.STORE, "storage:bookmarks") is not None
    assert await stores.kv.get(HOST, "alice", presence.PENDING, "dave@elsewhere.example") is not None
    offline = await stores.offline.fetch(HOST, "alice")
    assert len(offline) == 1 and b"while you were out" in offline[0].stanza
    assert etree.QName(etree.fromstring(offline[0].stanza)).namespace == "jabber:client"
    node = await stores.pubsub.node(f"alice@{HOST}", "urn:xmpp:avatar:metadata")
    assert node is not None
    config = NodeConfig.from_json(node.config, NodeConfig(access_model="presence"))
    assert (config.access_model, config.max_items) == ("open", 1)
    assert [i.item_id for i in await stores.pubsub.items(f"alice@{HOST}", "urn:xmpp:avatar:metadata")] == ["abc"]
    page = await stores.archive.page(f"alice@{HOST}", ArchiveFilter(), limit=10)
    assert [(m.archive_id, m.with_jid) for m in page.items] == [("m1", f"bob@{HOST}")]

    again = await service.import_path(tmp_path / "export.xml")
    assert {u.jid: u.status for u in again.users if u.status != "skipped"} == {
        f"alice@{HOST}": "merged", f"bob@{HOST}": "merged"}
    assert sum(again.total(name) for name in portable.LABELS) == 0
    assert len(await stores.offline.fetch(HOST, "alice")) == 1
    assert len(await stores.roster.items(HOST, "alice")) == 2
    assert "0 accounts created, 2 existing accounts completed, 2 skipped, 0 failed" in list(again.lines())[-1]


async def test_a_failing_user_rolls_back_alone(db: Database, tmp_path: Path) -> None:
    """One transaction per user: bob's credentials twice for one hash break the database's key, and his
    account row, already inserted, goes with them; alice is imported all the same."""
    service = await _service(db, tmp_path)
    stores = open_stores(db, tmp_path)
    twice = _scram("bob's password") * 2
    bad = EXPORT.replace("<user name='bob' password='bob plain password'/>",
                         f"<user name='bob'>{twice}<vCard xmlns='vcard-temp'><FN>Bob</FN></vCard></user>")
    report = await service.import_path(_write(tmp_path, bad))
    outcome = {u.jid: u for u in report.users}
    assert outcome[f"bob@{HOST}"].status == "failed" and outcome[f"alice@{HOST}"].status == "created"
    assert any("nothing of this user was imported" in n for n in outcome[f"bob@{HOST}"].notes)
    assert not await stores.accounts.exists(HOST, "bob")
    assert await stores.kv.get(HOST, "bob", vcard.STORE, vcard.KEY) is None
    assert await stores.accounts.exists(HOST, "alice")


async def test_export_then_import_into_a_fresh_database(db: Database, tmp_path: Path) -> None:
    service = await _service(db, tmp_path)
    await service.import_path(_write(tmp_path, EXPORT))
    out = tmp_path / "out" / "parlour.xml"
    summary = await service.export(out)
    assert summary.users == 2 and out.stat().st_mode & 0o777 == 0o600

    fresh = await open_database(str(tmp_path / "fresh" / "parlour.db"))
    try:
        copy = await _service(fresh, tmp_path)
        report = await copy.import_path(out)
        assert {u.jid: u.status for u in report.users} == {f"alice@{HOST}": "created", f"bob@{HOST}": "created"}
        assert not any(u.notes for u in report.users if u.jid == f"bob@{HOST}")  # bob has every hash
        stores = open_stores(fresh, tmp_path)
        accounts = AccountService(stores.accounts, iterations=64)
        assert await accounts.verify_plain(JID.parse(f"bob@{HOST}"), "bob plain password")
        assert await accounts.verify_plain(JID.parse(f"alice@{HOST}"), PASSWORD)
        assert len(await stores.roster.items(HOST, "alice")) == 2
        assert await stores.kv.get(HOST, "alice", presence.PENDING, "dave@elsewhere.example") is not None
        assert len(await stores.offline.fetch(HOST, "alice")) == 1
        node = await stores.pubsub.node(f"alice@{HOST}", "urn:xmpp:avatar:metadata")
        assert node is not None and NodeConfig.from_json(node.config, NodeConfig()).access_model == "open"
        page = await stores.archive.page(f"alice@{HOST}", ArchiveFilter(), limit=10)
        assert [m.archive_id for m in page.items] == ["m1"]
        assert (await copy.export(tmp_path / "again.xml")).users == 2
    finally:
        await fresh.close()


def test_the_store_names_are_the_modules_own() -> None:
    assert portable.VCARD == (vcard.STORE, vcard.KEY)
    assert portable.PRIVATE == private.STORE and portable.PENDING == presence.PENDING
    assert portable.PRIVATE_QUERY == private.QUERY
    known = set(NodeConfig.__dataclass_fields__)
    assert set(portable._BOOLEAN + portable._TEXT + portable._LIST) | {"max_items"} == known


async def test_unreadable_input_is_refused_whole(db: Database, tmp_path: Path) -> None:
    service = await _service(db, tmp_path)
    for text in ("<not-xml", "<html/>"):
        try:
            await service.import_path(_write(tmp_path, text, "bad.xml"))
        except portable.PortableError as exc:
            assert "bad.xml" in str(exc)
        else:
            raise AssertionError(f"{text!r} was accepted")
