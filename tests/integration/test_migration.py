"""Moving to Parlour from Debian's ejabberd and Prosody: each peer is started, filled by real clients
(accounts, contacts, a vCard, a bookmark in private XML, a PEP nickname, messages), exported with its own
tool, stopped; `parlour import` reads the export, and the users log in to Parlour with their old passwords
(SCRAM-SHA-1 keys carried over, then PLAIN, which adds the other hashes) to find their contacts, vCard,
bookmarks and offline messages.

Rooms are not part of XEP-0227 (its §2: "the contents of MUC, Pubsub and other services are out of scope")
and neither peer writes them; the bookmarks that name them are carried. Debian's Prosody 0.12 exporter has
no offline-message store (mod_storage_xep0227 has no handler for it): its archive is carried instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from tests.integration import migration_peers as peers
from tests.integration.harness import Client, free_port
from tests.integration.process import TIMEOUT, ServerProcess, parlour
from tests.integration.test_backup import write_config

DOMAIN = "old.example"
PASSWORDS = {"alice": "alice's old secret", "bob": "bob's old secret"}
BOOKMARKS = f"<storage xmlns='storage:bookmarks'><conference jid='tea@conference.{DOMAIN}' name='Tea'/></storage>"


class PeerClient(slixmpp.ClientXMPP):
    """A plain slixmpp client for the peers (loopback, no TLS)."""

    def __init__(self, user: str) -> None:
        super().__init__(f"{user}@{DOMAIN}/old", PASSWORDS[user])
        self.plugin["feature_mechanisms"].unencrypted_scram = True  # loopback only
        self.started = asyncio.Event()
        self.add_event_handler("session_start", lambda _e: self.started.set())

    async def login(self, port: int) -> PeerClient:
        self.connect(host="127.0.0.1", port=port)
        await asyncio.wait_for(self.started.wait(), TIMEOUT)
        await self.get_roster()
        return self

    async def set(self, payload: str) -> None:
        iq = self.make_iq_set()
        iq.append(ET.fromstring(payload))
        await iq.send(timeout=TIMEOUT)

    async def leave(self) -> None:
        self.disconnect()
        await self.disconnected


async def fill(port: int) -> None:
    """What users leave on their old server: alice's contacts, vCard, bookmark and nickname; bob's messages."""
    for user, password in PASSWORDS.items():
        await peers.register(port, DOMAIN, user, password)
    alice = await PeerClient("alice").login(port)
    await alice.set(f"<query xmlns='jabber:iq:roster'><item jid='bob@{DOMAIN}' name='Bobby'><group>Friends</group>"
                    "</item></query>")
    await alice.set("<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><NICKNAME>al</NICKNAME></vCard>")
    await alice.set(f"<query xmlns='jabber:iq:private'>{BOOKMARKS}</query>")
    await alice.set("<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='http://jabber.org/protocol/nick'>"
                    "<item id='current'><nick xmlns='http://jabber.org/protocol/nick'>Al</nick></item></publish></pubsub>")
    await alice.leave()
    bob = await PeerClient("bob").login(port)
    bob.send_message(mto=f"alice@{DOMAIN}", mbody="sent while you were away", mtype="chat")
    await bob.set("<vCard xmlns='vcard-temp'><FN>Bob</FN></vCard>")  # a round trip: the message is stored
    await bob.leave()


@contextlib.asynccontextmanager
async def parlour_with(export: Path, tmp_path: Path) -> AsyncIterator[tuple[ServerProcess, int, str]]:
    """A fresh Parlour serving the old domain, the export imported before its first start."""
    c2s = free_port()
    config = write_config(tmp_path / "parlour", c2s, free_port(), DOMAIN)
    imported = await asyncio.to_thread(parlour, "import", "--xep0227", str(export), "--config", str(config))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    server = ServerProcess(config, tmp_path / "parlour.log")
    await server.start()
    try:
        yield server, c2s, imported.stdout
    finally:
        await server.stop()


async def login(server: ServerProcess, port: int, user: str, mechanism: str) -> Client:
    client = Client(f"{user}@{DOMAIN}/new", PASSWORDS[user], server.config.parent / "state" / "certs" / "ca.pem")
    client.plugin["feature_mechanisms"].use_mech = mechanism
    client.connect(host="127.0.0.1", port=port)
    done = asyncio.ensure_future(client.started.wait())
    failed = asyncio.ensure_future(client.auth_failed.wait())
    await asyncio.wait({done, failed}, timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    failed.cancel()
    assert client.started.is_set(), f"{user} could not log in with {mechanism}"
    return client


async def get(client: Client, payload: str) -> ET.Element:
    iq = client.make_iq_get()
    iq.append(ET.fromstring(payload))
    return (await iq.send(timeout=TIMEOUT)).xml


async def archived_bodies(client: Client) -> list[str]:
    """The bodies of the account's archive (XEP-0313), as many as the query's <fin/> counts."""
    results: asyncio.Queue[ET.Element] = asyncio.Queue()
    client.register_handler(Callback("mam", MatchXPath("{jabber:client}message/{urn:xmpp:mam:2}result"),
                                     lambda message: results.put_nowait(message.xml)))
    iq = client.make_iq_set()
    iq.append(ET.fromstring("<query xmlns='urn:xmpp:mam:2' queryid='all'/>"))
    fin = (await iq.send(timeout=TIMEOUT)).xml
    count = int(fin.findtext(".//{http://jabber.org/protocol/rsm}count") or 0)
    bodies = [(await asyncio.wait_for(results.get(), TIMEOUT)).findtext(".//{jabber:client}body") or ""
              for _ in range(count)]
    return bodies


async def check_parlour(server: ServerProcess, port: int, *, offline: bool) -> None:
    alice = await login(server, port, "alice", "SCRAM-SHA-1")  # the old server's keys, as they were
    try:
        roster = await alice.get_roster()
        item = roster["roster"]["items"][f"bob@{DOMAIN}"]
        assert (item["name"], list(item["groups"])) == ("Bobby", ["Friends"])
        card = await get(alice, "<vCard xmlns='vcard-temp'/>")
        assert card.find(".//{vcard-temp}FN").text == "Alice Liddell"
        stored = await get(alice, "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>")
        assert stored.find(".//{storage:bookmarks}conference").get("jid") == f"tea@conference.{DOMAIN}"
        alice.send_presence()
        if offline:
            message = await alice.next_message(TIMEOUT)
            assert message["body"] == "sent while you were away" and message["from"].bare == f"bob@{DOMAIN}"
        else:  # Prosody's export carries its archive instead: the message is in alice's history
            assert await archived_bodies(alice) == ["sent while you were away"]
    finally:
        alice.abort()
    bob = await login(server, port, "bob", "PLAIN")  # checked against SCRAM-SHA-1, then every hash is derived
    bob.abort()
    bob = await login(server, port, "bob", "SCRAM-SHA-256")
    bob.abort()


@pytest.mark.skipif(peers.ejabberd_missing() is not None, reason=peers.ejabberd_missing() or "")
async def test_from_ejabberd(tmp_path: Path) -> None:
    ejabberd = peers.Ejabberd(tmp_path / "ejabberd", DOMAIN, free_port(), free_port())
    try:
        await ejabberd.start()
        await fill(ejabberd.port)
        export = await asyncio.to_thread(ejabberd.export)
    finally:
        await ejabberd.stop()
    async with parlour_with(export, tmp_path) as (server, port, report):
        assert f"alice@{DOMAIN}: created (1 contacts" in report and "1 offline messages" in report, report
        assert "2 accounts created" in report
        await check_parlour(server, port, offline=True)


@pytest.mark.skipif(peers.prosody_missing() is not None, reason=peers.prosody_missing() or "")
async def test_from_prosody(tmp_path: Path) -> None:
    prosody = peers.Prosody(tmp_path / "prosody", DOMAIN, free_port())
    try:
        await prosody.start()
        await fill(prosody.port)
    finally:
        await prosody.stop()
    export = await asyncio.to_thread(prosody.export)
    assert sorted(p.name for p in export.glob("*.xml")) == [f"alice@{DOMAIN}.xml", f"bob@{DOMAIN}.xml"]
    async with parlour_with(export, tmp_path) as (server, port, report):
        assert f"alice@{DOMAIN}: created (1 contacts, 2 documents" in report, report
        assert "1 PEP nodes, 1 PEP items, 1 archived messages)" in report and "2 accounts created" in report
        await check_parlour(server, port, offline=False)
