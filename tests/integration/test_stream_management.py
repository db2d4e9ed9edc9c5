"""Stream management (XEP-0198) against a real server: a phone that loses its connection mid-conversation
resumes without losing or duplicating a message; after the resumption window its messages go offline;
an acknowledgement from the server means the stanzas before it are stored; the same over WebSocket."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import slixmpp

from appliance.app import Parlour
from appliance.config.load import default_config
from appliance.core.c2s import ClientSession
from appliance.core.session_options import StreamManagementOptions
from appliance.xmpp.jid import JID
from appliance.xmpp.ns import NS_CLIENT, NS_SM
from tests.integration.harness import PASSWORD, Client, Harness, make_config
from tests.web.clients import WsClient, message, plain_auth

TIMEOUT = 10.0
SM = f"{{{NS_SM}}}"
BODY = f"{{{NS_CLIENT}}}body"


async def until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not condition():
            await asyncio.sleep(0.02)


async def sm_harness(
    tmp_path: Path, *, resume_timeout: float = 300.0, plaintext_on_loopback: bool = False, stanza_rate: int = 0
) -> Harness:
    """A server with a short housekeeping interval and the given resumption window (and stanza rate)."""
    cfg = make_config(tmp_path)
    cfg = replace(cfg, c2s=replace(cfg.c2s, allow_plaintext_on_loopback=plaintext_on_loopback))
    if stanza_rate:
        cfg = replace(cfg, limits=replace(cfg.limits, stanza_rate=stanza_rate))
    host = cfg.hosts[0]
    sm_options = replace(host.modules.of(StreamManagementOptions), resume_timeout=resume_timeout)
    host = replace(host, modules=host.modules.with_options(sm_options))
    http = replace(default_config(tmp_path).http, port=0, tls_port=0, interfaces=("127.0.0.1",),
                   consider_websocket_secure=True)
    server = Parlour(replace(cfg, hosts=(host,), http=http), sweep_interval=0.1)
    await server.start()
    return Harness(server)


class Phone(Client):
    """A slixmpp client with stream management and resumption, like a mobile app."""

    def __init__(self, jid: str, ca_file: Path) -> None:
        super().__init__(jid, PASSWORD, ca_file)
        self.register_plugin("xep_0198")
        self.bodies: list[str] = []
        self.resumed = asyncio.Event()
        self.add_event_handler("message", lambda m: self.bodies.append(m["body"]))
        self.add_event_handler("session_resumed", lambda _e: self.resumed.set())

    @property
    def sm(self) -> Any:
        return self.plugin["xep_0198"]

    def drop(self) -> None:
        """The radio goes away: the TCP connection dies without a stream close."""
        assert self.transport is not None
        self.transport.abort()


async def phone_on(harness: Harness, jid: str) -> Phone:
    phone = Phone(f"{jid}/phone", harness.ca_file)
    harness.clients.append(phone)
    phone.connect(host="127.0.0.1", port=harness.port)
    await asyncio.wait_for(phone.started.wait(), TIMEOUT)
    await until(lambda: phone.sm.sm_id is not None, "stream management enabled")
    phone.send_presence()
    return phone


async def conversation(harness: Harness) -> tuple[str, Client, Phone, str]:
    """alice's phone (stream management) and bob (plain slixmpp): (alice's bare JID, bob, phone, phone's JID)."""
    phone_jid = await harness.user("alice")
    bob = await harness.client(await harness.user("bob"))
    phone = await phone_on(harness, phone_jid)
    return phone_jid, bob, phone, str(phone.boundjid)


async def ws_after_sasl(harness: Harness) -> WsClient:
    """A WebSocket stream authenticated as alice and restarted, before binding (where <resume/> goes)."""
    ws = await WsClient.connect(f"ws://127.0.0.1:{harness.http_port}/xmpp-websocket")
    await ws.open(harness.domain)
    await ws.send(plain_auth("alice", PASSWORD))
    await ws.recv_tag("{urn:ietf:params:xml:ns:xmpp-sasl}success")
    await ws.open(harness.domain)
    return ws


def server_session(harness: Harness, jid: str) -> ClientSession | None:
    session = harness.server.sessions.get(JID.parse(jid))
    return session if isinstance(session, ClientSession) else None


async def all_acked(harness: Harness, phone: Phone) -> None:
    """The phone acknowledges everything it has; wait until the server knows."""
    phone.sm.send_ack()
    session = server_session(harness, str(phone.boundjid))
    assert session is not None and session.sm is not None
    state = session.sm
    await until(lambda: state.unacked == 0, "the server saw the acknowledgement")


async def send_numbered(sender: slixmpp.ClientXMPP, to: str, numbers: range) -> list[str]:
    bodies = [f"message {n}" for n in numbers]
    for body in bodies:
        sender.send_message(mto=to, mbody=body, mtype="chat")
    return bodies


async def test_a_phone_that_drops_its_connection_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    harness = await sm_harness(tmp_path)
    try:
        phone_jid, bob, phone, full = await conversation(harness)

        sent = await send_numbered(bob, full, range(1, 6))
        await until(lambda: len(phone.bodies) == 5, "the first messages arrived")
        phone.drop()
        # Mid-conversation: bob keeps writing while the phone has no connection.
        sent += await send_numbered(bob, full, range(6, 21))
        await until(lambda: (s := server_session(harness, full)) is not None and bool(s.hibernated_at),
                    "the server noticed the dead connection")
        sent += await send_numbered(bob, full, range(21, 31))
        # The session kept its resource and stays available while it waits.
        assert any(str(s.jid) == full for s in harness.server.sessions.available(JID.parse(phone_jid)))

        phone.connect(host="127.0.0.1", port=harness.port)
        await asyncio.wait_for(phone.resumed.wait(), TIMEOUT)
        await until(lambda: len(phone.bodies) >= len(sent), "every message arrived")
        sent += await send_numbered(bob, full, range(31, 36))
        await until(lambda: len(phone.bodies) >= len(sent), "the resumed stream carries new messages")
        await asyncio.sleep(0.3)  # a duplicate would arrive in this time
        assert phone.bodies == sent
        assert str(phone.boundjid) == full
    finally:
        await harness.close()


async def test_after_the_resumption_window_messages_wait_offline(tmp_path: Path) -> None:
    harness = await sm_harness(tmp_path, resume_timeout=1.0)
    try:
        phone_jid, bob, phone, full = await conversation(harness)

        before = await send_numbered(bob, full, range(1, 4))
        await until(lambda: len(phone.bodies) == 3, "the first messages arrived")
        await all_acked(harness, phone)
        phone.drop()
        later = await send_numbered(bob, full, range(4, 12))
        await until(lambda: server_session(harness, full) is None, "the resumption window closed")
        await asyncio.sleep(0.2)  # the rerouting task stores them

        assert phone.bodies == before
        again = await harness.client(phone_jid, resource="laptop")
        got = [(await again.next_message(TIMEOUT))["body"] for _ in later]
        assert got == later
        await asyncio.sleep(0.3)
        assert again.messages.empty()
    finally:
        await harness.close()


async def test_unacknowledged_messages_go_to_another_resource_when_the_window_closes(tmp_path: Path) -> None:
    harness = await sm_harness(tmp_path, resume_timeout=1.0)
    try:
        phone_jid, bob, phone, full = await conversation(harness)
        desktop = await harness.client(phone_jid, resource="desktop")
        await all_acked(harness, phone)
        phone.drop()
        later = await send_numbered(bob, full, range(1, 6))
        got = [(await desktop.next_message(TIMEOUT))["body"] for _ in later]
        assert got == later
    finally:
        await harness.close()


async def test_a_server_stopping_stores_unacknowledged_messages(tmp_path: Path) -> None:
    harness = await sm_harness(tmp_path)
    phone_jid, bob, phone, full = await conversation(harness)
    await all_acked(harness, phone)
    phone.drop()
    await until(lambda: (s := server_session(harness, full)) is not None and bool(s.hibernated_at),
                "the server noticed the dead connection")
    later = await send_numbered(bob, full, range(1, 6))
    session = server_session(harness, full)
    assert session is not None and session.sm is not None
    await until(lambda: session.sm is not None and session.sm.unacked == 5, "queued for the phone")
    await harness.close()

    server = Parlour(harness.server.config, sweep_interval=0.1)
    await server.start()
    restarted = Harness(server)
    try:
        again = await restarted.client(phone_jid, resource="laptop")
        got = [(await again.next_message(TIMEOUT))["body"] for _ in later]
        assert got == later
    finally:
        await restarted.close()


async def test_an_acknowledgement_means_the_stanzas_before_it_are_stored(tmp_path: Path) -> None:
    """Inbound h: the server's <a/> counts a message only once its offline copy is committed."""
    harness = await sm_harness(tmp_path)
    try:
        await harness.user("alice")
        bob = await harness.user("bob")  # never online: every message goes to offline storage
        ws = await WsClient.connect(f"ws://127.0.0.1:{harness.http_port}/xmpp-websocket")
        try:
            await ws.login(harness.domain, "alice", PASSWORD)
            await ws.send(f"<enable xmlns='{NS_SM}'/>")
            assert (await ws.recv_tag(f"{SM}enabled")).get("resume") is None
            for n in range(50):
                await ws.send(message(bob, f"durable {n}"))
            await ws.send(f"<r xmlns='{NS_SM}'/>")
            answer = await ws.recv_tag(f"{SM}a")
            stored = await harness.server.stores.offline.fetch(harness.domain, "bob")  # type: ignore[union-attr]
            assert answer.get("h") == "50"
            assert len(stored) == 50
        finally:
            await ws.close()
    finally:
        await harness.close()


async def ws_login_sm(harness: Harness, user: str) -> tuple[WsClient, str, str]:
    ws = await WsClient.connect(f"ws://127.0.0.1:{harness.http_port}/xmpp-websocket")
    jid = await ws.login(harness.domain, user, PASSWORD)
    await ws.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
    enabled = await ws.recv_tag(f"{SM}enabled")
    assert enabled.get("resume") == "true" and enabled.get("max") == "300"
    await ws.send(f"<presence xmlns='{NS_CLIENT}'/>")
    return ws, jid, enabled.get("id", "")


async def collect(ws: WsClient, count: int, handled: list[str]) -> None:
    """Read stanzas, answering <r/> with our count, until `count` message bodies arrived."""
    while len([b for b in handled if b]) < count:
        element = await ws.recv(TIMEOUT)
        if element.tag == f"{SM}r":
            await ws.send(f"<a xmlns='{NS_SM}' h='{len(handled)}'/>")
        elif element.tag in (f"{{{NS_CLIENT}}}message", f"{{{NS_CLIENT}}}presence", f"{{{NS_CLIENT}}}iq"):
            handled.append(element.findtext(BODY) or "")


async def test_websocket_sessions_resume_too(tmp_path: Path) -> None:
    harness = await sm_harness(tmp_path)
    try:
        await harness.user("alice")
        bob = await harness.client(await harness.user("bob"))
        ws, jid, sm_id = await ws_login_sm(harness, "alice")
        handled: list[str] = []  # every stanza the client counted, "" for those without a body
        sent = await send_numbered(bob, jid, range(1, 4))
        await collect(ws, 3, handled)
        await ws.ws.close()  # the tab is frozen, the socket gone
        await ws.http.close()
        sent += await send_numbered(bob, jid, range(4, 9))
        await until(lambda: (s := server_session(harness, jid)) is not None and bool(s.hibernated_at),
                    "hibernated")

        again = await ws_after_sasl(harness)
        try:
            await again.send(f"<resume xmlns='{NS_SM}' previd='{sm_id}' h='{len(handled)}'/>")
            resumed = await again.recv_tag(f"{SM}resumed")
            assert resumed.get("previd") == sm_id
            await collect(again, len(sent), handled)
            assert [b for b in handled if b] == sent
        finally:
            await again.close()
    finally:
        await harness.close()


async def test_resuming_an_unknown_session_fails_with_item_not_found(tmp_path: Path) -> None:
    harness = await sm_harness(tmp_path)
    try:
        await harness.user("alice")
        ws = await ws_after_sasl(harness)
        try:
            await ws.send(f"<resume xmlns='{NS_SM}' previd='nope' h='0'/>")
            failed = await ws.recv_tag(f"{SM}failed")
            assert failed.find("{urn:ietf:params:xml:ns:xmpp-stanzas}item-not-found") is not None
        finally:
            await ws.close()
    finally:
        await harness.close()



async def test_a_resumed_session_reads_again_after_a_backlog_pipelined_behind_resume(tmp_path: Path) -> None:
    """The new connection stops reading while its backlog is long; the resumed session that takes the
    connection over (and the backlog with it) must let it read again once it has caught up."""
    from tests.conformance.client import raw_open
    from tests.conformance.conftest import ServerInfo

    # The raw client does no TLS; the backlog is meant to hit the session's intake limit, not the shaper.
    harness = await sm_harness(tmp_path, plaintext_on_loopback=True, stanza_rate=1_000_000)
    try:
        info = ServerInfo("parlour", "127.0.0.1", harness.port, harness.domain, PASSWORD)
        await harness.user("alice")
        first = await raw_open(info)
        await first.login("alice", PASSWORD)
        await first.bind("phone")
        await first.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
        previd = (await first.expect(lambda e: e.tag == f"{SM}enabled")).get("id")
        await first.abort()
        full = f"alice@{harness.domain}/phone"
        await until(lambda: (s := server_session(harness, full)) is not None and bool(s.hibernated_at),
                    "the server noticed the dead connection")

        second = await raw_open(info)
        await second.login("alice", PASSWORD)
        requests = f"<r xmlns='{NS_SM}'/>" * 3000  # well past the session's intake limit, in one write
        await second.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>" + requests)
        await second.expect(lambda e: e.tag == f"{SM}resumed", timeout=TIMEOUT)
        reply = await second.iq("<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>", timeout=TIMEOUT)
        assert reply.get("type") == "result"
        await second.abort()
    finally:
        await harness.close()
