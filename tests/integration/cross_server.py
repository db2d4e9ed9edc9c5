"""What the cross-server tests share, whatever the peer: a Parlour serving one domain in front of a peer's
network namespace, the room scenario played both ways, carbons and MAM look-ups."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Protocol
from xml.etree import ElementTree as ET

from slixmpp import JID

from appliance.app import Parlour
from appliance.config.model import FederationConfig, S2SConfig, TlsConfig
from tests.integration.harness import Client, Harness, make_config
from tests.integration.prosody_peer import Namespace
from tests.integration.stanzas import iq, raw_messages
from tests.integration.test_muc import codes, create_room, groupchat, presence_from

CARBONS, FORWARD, MAM = "urn:xmpp:carbons:2", "urn:xmpp:forward:0", "urn:xmpp:mam:2"


async def parlour_facing(ns: Namespace, base: Path, domain: str, *, port: int = 5269, tls: TlsConfig | None = None,
                         **s2s: object) -> Harness:
    """A started Parlour serving `domain`, its s2s on the namespace's outer address, asking the test's DNS
    server there; `s2s` changes [s2s] (ca_bundle, require_valid_certificates ...). The direct TLS listener
    is off: a second Parlour on the same address takes port 5270."""
    config = S2SConfig(interfaces=(ns.outer,), port=port, direct_tls_port=0, nameservers=(f"{ns.outer}:53",),
                       dns_timeout=2.0, connect_timeout=3.0, auth_timeout=10.0, queue_timeout=15.0)
    cfg = make_config(base)
    cfg = replace(cfg, hosts=(replace(cfg.hosts[0], name=domain),), federation=FederationConfig(enabled=True),
                  s2s=replace(config, **s2s))  # type: ignore[arg-type]
    if tls is not None:
        cfg = replace(cfg, tls=tls)
    server = Parlour(cfg)
    await server.start()
    return Harness(server)


class Peer(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


@asynccontextmanager
async def running(parlour: Harness, peer: Peer) -> AsyncIterator[None]:
    """Start `peer` (Parlour is started already); stop both at the end, whatever happens."""
    try:
        await peer.start()
        yield
    finally:
        await parlour.close()
        await peer.stop()


async def peer_client(jid: str, password: str, ca: Path, address: str, clients: list[Client], *,
                      plugins: tuple[str, ...] = (), presence: bool = True) -> Client:
    """A client of a peer server at `address`:5222 (STARTTLS, trusting `ca`), logged in with its roster,
    recorded in `clients` for the end of the test."""
    client = Client(jid, password, ca)
    for plugin in plugins:
        client.register_plugin(plugin)
    clients.append(client)
    client.connect(host=address, port=5222)
    await asyncio.wait_for(client.started.wait(), 15)
    await client.get_roster()
    if presence:
        client.send_presence()
    return client


def disconnect_all(clients: list[Client]) -> None:
    """End a test's client sessions on a server the module shares, and forget them."""
    for client in clients:
        if client.is_connected():
            client.disconnect()
    clients.clear()


async def rooms_across(juliet: Client, nurse: Client, romeo: Client, room: str, other: str) -> None:
    """juliet (owner) and nurse in `room` on their server, romeo from the other server: occupants, history,
    messages, a kick seen by all; then romeo's `other` on his server, joined by juliet, and kicked there."""
    await create_room(juliet, room, "Juliet")
    juliet.send_message(mto=room, mbody="before romeo came", mtype="groupchat")
    await groupchat(juliet, body="before romeo came")
    own, _subject, occupants, history = await romeo.plugin["xep_0045"].join_muc_wait(JID(room), "Romeo",
                                                                                     maxstanzas=5, timeout=20)
    assert 110 in codes(own) and own["muc"]["role"] == "participant"
    assert {str(p["from"]) for p in occupants} == {f"{room}/Juliet", f"{room}/Romeo"}
    assert [m["body"] for m in history] == ["before romeo came"]
    assert history[0]["delay"]["stamp"] is not None
    seen = await presence_from(juliet, f"{room}/Romeo", timeout=10)
    assert seen["muc"]["jid"].bare == romeo.boundjid.bare  # the owner sees his real JID
    romeo.send_message(mto=room, mbody="from afar", mtype="groupchat")
    assert (await groupchat(juliet, body="from afar", timeout=10))["from"] == JID(f"{room}/Romeo")
    juliet.send_message(mto=room, mbody="from home", mtype="groupchat")
    await groupchat(romeo, body="from home", timeout=10)
    await nurse.plugin["xep_0045"].join_muc_wait(JID(room), "Nurse", maxstanzas=0, timeout=10)
    await juliet.plugin["xep_0045"].set_role(room, "Romeo", "none", reason="banished")
    kicked = await presence_from(romeo, f"{room}/Romeo", ptype="unavailable", timeout=15)
    assert {110, 307} <= codes(kicked)
    assert 307 in codes(await presence_from(nurse, f"{room}/Romeo", ptype="unavailable"))

    await create_room(romeo, other, "Romeo")
    romeo.send_message(mto=other, mbody="remote history", mtype="groupchat")
    await groupchat(romeo, body="remote history", timeout=10)
    own, _subject, occupants, history = await juliet.plugin["xep_0045"].join_muc_wait(JID(other), "Juliet",
                                                                                       maxstanzas=5, timeout=20)
    assert 110 in codes(own) and {str(p["from"]) for p in occupants} == {f"{other}/Romeo", f"{other}/Juliet"}
    assert [m["body"] for m in history] == ["remote history"]
    juliet.send_message(mto=other, mbody="visiting", mtype="groupchat")
    assert (await groupchat(romeo, body="visiting", timeout=10))["from"] == JID(f"{other}/Juliet")
    await romeo.plugin["xep_0045"].set_role(other, "Juliet", "none", reason="out")
    assert 307 in codes(await presence_from(juliet, f"{other}/Juliet", ptype="unavailable", timeout=15))


async def carbons_across(phone: Client, laptop: Client, romeo: Client) -> None:
    """phone and laptop are one account with carbons on, romeo on the other server: copies of what phone
    sends him and of what he sends phone reach laptop, and phone's archive holds both."""
    for client in (phone, laptop):
        await iq(client, "set", f"<enable xmlns='{CARBONS}'/>")
    copies = raw_messages(laptop)
    peer = romeo.boundjid.bare
    phone.send_message(mto=peer, mbody="sent from the phone", mtype="chat")
    assert (await romeo.next_message(15))["body"] == "sent from the phone"
    assert (await carbon(copies, "sent")).get("to") == peer
    romeo.send_message(mto=phone.boundjid.full, mbody="to the phone only", mtype="chat")
    assert (await phone.next_message(15))["body"] == "to the phone only"
    assert JID((await carbon(copies, "received")).get("from")).bare == peer
    assert await archived(phone, peer) == ["sent from the phone", "to the phone only"]


async def carbon(queue: asyncio.Queue[ET.Element], kind: str) -> ET.Element:
    """The message inside the next `kind` ("sent" or "received") carbon."""
    async with asyncio.timeout(15):
        while True:
            holder = (await queue.get()).find(f"{{{CARBONS}}}{kind}")
            if holder is not None:
                forwarded = holder.find(f"{{{FORWARD}}}forwarded/{{jabber:client}}message")
                assert forwarded is not None
                return forwarded


async def archived(client: Client, peer: str) -> list[str]:
    """The bodies of `client`'s archive (MAM) with `peer`, oldest first."""
    results = raw_messages(client)
    fields = (f"<field var='FORM_TYPE' type='hidden'><value>{MAM}</value></field>"
              f"<field var='with'><value>{peer}</value></field>")
    await iq(client, "set", f"<query xmlns='{MAM}' queryid='q'><x xmlns='jabber:x:data' type='submit'>"
                            f"{fields}</x></query>")
    bodies = []
    while not results.empty():
        result = results.get_nowait().find(f"{{{MAM}}}result")
        if result is not None:
            bodies.append(result.findtext(f"{{{FORWARD}}}forwarded/{{jabber:client}}message/{{jabber:client}}body"))
    return bodies
