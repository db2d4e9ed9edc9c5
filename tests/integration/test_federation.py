"""Two Parlour servers federating over real sockets: a.test and b.test, each with its own local CA,
found through static routes (the s2s resolver's map), with real slixmpp clients on both sides."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from appliance.app import Parlour
from appliance.config.model import FederationConfig, S2SConfig
from appliance.xmpp.jid import JID
from appliance.xmpp.s2s import Phase
from tests.integration.federated import (
    FEDERATION_ON,
    chat_both_ways,
    parlour_pair,
    s2s_route,
    start_server,
    trusting_each_other,
)
from tests.integration.harness import PASSWORD, Harness, free_port, make_config
from tests.net.dnsserver import DnsServer


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Harness, Harness]]:
    async with parlour_pair(tmp_path, "a.test", "b.test") as servers:
        yield servers


async def test_messages_both_ways_with_dialback(pair: tuple[Harness, Harness]) -> None:
    a, b = pair
    juliet = await a.client(await a.user("juliet"))
    romeo = await b.client(await b.user("romeo"))
    juliet.send_message(mto="romeo@b.test", mbody="Wherefore art thou?", mtype="chat")
    got = await romeo.next_message(10)
    assert got["body"] == "Wherefore art thou?" and got["from"].bare == "juliet@a.test"
    romeo.send_message(mto="juliet@a.test/test", mbody="Here.", mtype="chat")
    back = await juliet.next_message(10)
    assert back["body"] == "Here." and back["from"].bare == "romeo@b.test"
    methods = {(c.outgoing, c.machine.remote, c.secure_method) for c in a.server.federation.federation.connections()}
    # each side's CA is unknown to the other: EXTERNAL offered for the certificate shown, refused, dialback
    assert {(True, "b.test", "dialback"), (False, "b.test", "dialback")} <= methods
    # one outgoing connection each way, reused for the second message
    juliet.send_message(mto="romeo@b.test", mbody="again", mtype="chat")
    assert (await romeo.next_message(10))["body"] == "again"
    assert sum(c.outgoing for c in a.server.federation.federation.connections()) == 1


async def test_direct_tls_only_both_ways(tmp_path: Path) -> None:
    """XEP-0368: DNS publishes only _xmpps-server records, pointing at each server's direct TLS listener;
    both directions connect there with TLS from the first byte (no STARTTLS) and chat works both ways."""
    tls_a, tls_b = free_port(), free_port()
    zone = {("_xmpps-server._tcp.a.test.", "SRV"): [f"0 5 {tls_a} a.test."], ("a.test.", "A"): ["127.0.0.1"],
            ("_xmpps-server._tcp.b.test.", "SRV"): [f"0 5 {tls_b} b.test."], ("b.test.", "A"): ["127.0.0.1"]}
    async with DnsServer(zone) as dns:
        def s2s(direct_tls_port: int) -> S2SConfig:
            return s2s_route(free_port(), "nobody.test", free_port(), direct_tls_port=direct_tls_port, static_routes=(),
                        nameservers=(dns.address,), dns_timeout=2.0)
        a = await start_server(tmp_path / "a", "a.test", s2s(tls_a))
        b = await start_server(tmp_path / "b", "b.test", s2s(tls_b))
        try:
            assert (a.server.ports["s2s_direct_tls"], b.server.ports["s2s_direct_tls"]) == (tls_a, tls_b)
            await chat_both_ways(a, b)
            for server in (a.server, b.server):
                assert server.federation is not None
                links = [c for c in server.federation.federation.connections() if c.machine.pairs]
                assert {c.outgoing for c in links} == {True, False}  # one each way
                for link in links:
                    assert link.direct_tls and link.tls_version in ("TLSv1.2", "TLSv1.3"), link
            assert ("_xmpps-server._tcp.b.test.", "SRV") in dns.asked
        finally:
            await a.close()
            await b.close()


async def test_unreachable_remote_bounces_within_the_timeout(tmp_path: Path) -> None:
    dead = free_port()  # nobody listens there
    a = await start_server(tmp_path / "a", "a.test", s2s_route(free_port(), "nowhere.test", dead, queue_timeout=1.0))
    try:
        juliet = await a.client(await a.user("juliet"))
        juliet.send_message(mto="romeo@nowhere.test", mbody="hello?", mtype="chat")
        error = await juliet.next_message(10)
        assert error["type"] == "error"
        assert error["error"]["condition"] == "remote-server-not-found"
    finally:
        await a.close()


async def test_certificates_required_and_trusted(tmp_path: Path) -> None:
    """Both trust each other's CA and require valid certificates: the link is verified, not dialback alone."""
    async with trusting_each_other(tmp_path) as (a, b):
        juliet = await a.client(await a.user("juliet2"))
        romeo = await b.client(await b.user("romeo2"))
        juliet.send_message(mto="romeo2@b.test", mbody="verified", mtype="chat")
        assert (await romeo.next_message(10))["body"] == "verified"
        outgoing = [c for c in a.server.federation.federation.connections() if c.outgoing]
        assert outgoing and outgoing[0].certificate_valid


async def test_incoming_sasl_external_with_server_auth_only_certificates(tmp_path: Path) -> None:
    """Each side trusts the other's CA, whose certificates carry only the serverAuth key usage (as public
    CAs' do now): the receiving side asks for the initiator's certificate, checks it itself and accepts
    SASL EXTERNAL, so no dialback round trip is needed and, with bidi, one TCP connection serves both ways."""
    async with trusting_each_other(tmp_path) as (a, b):
        for h in (a, b):
            files = h.server.certs.files_for(h.domain) if h.server.certs is not None else None
            assert files is not None
            leaf = x509.load_pem_x509_certificates(files[0].read_bytes())[0]
            usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
        await chat_both_ways(a, b)
        for h in (a, b):
            assert h.server.federation is not None
            links = list(h.server.federation.federation.connections())
            assert [(c.secure_method, c.certificate_valid, c.machine.bidi) for c in links] == [
                ("external", True, True)], links
            assert h.server.federation.federation.stats.get("s2s_dialback_failures", 0) == 0


async def test_untrusted_certificate_refused_when_required(tmp_path: Path) -> None:
    port_a, port_b = free_port(), free_port()
    a = await start_server(tmp_path / "a", "a.test", s2s_route(port_a, "b.test", port_b,
                                                               require_valid_certificates=True, queue_timeout=2.0))
    b = await start_server(tmp_path / "b", "b.test", s2s_route(port_b, "a.test", port_a))
    try:
        juliet = await a.client(await a.user("juliet"))
        juliet.send_message(mto="romeo@b.test", mbody="x", mtype="chat")
        error = await juliet.next_message(10)
        assert error["type"] == "error"
        assert error["error"]["condition"] in ("remote-server-not-found", "remote-server-timeout")
    finally:
        await a.close()
        await b.close()


async def _refused(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:`port` any more."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


async def test_federation_switched_on_and_off_without_a_restart(tmp_path: Path) -> None:
    """a.test starts with federation off: no s2s listener. Switched on by a reload (what the file watcher,
    the console and `parlour federation enable` end in), its listeners open and chat with b.test works both
    ways; switched off, they close, and the streams between the two end with a stream close on both sides."""
    port_a, port_b = free_port(), free_port()
    off = FederationConfig(enabled=False)
    a = await start_server(tmp_path / "a", "a.test", s2s_route(port_a, "b.test", port_b), federation=off)
    b = await start_server(tmp_path / "b", "b.test", s2s_route(port_b, "a.test", port_a, queue_timeout=1.0))
    try:
        direct_a = a.server.config.s2s.direct_tls_port
        assert a.server.federation is None and "s2s" not in a.server.ports
        assert await _refused(port_a) and await _refused(direct_a)

        assert await a.server.reload(replace(a.server.config, federation=FEDERATION_ON)) == []
        assert a.server.federation is not None
        assert (a.server.ports["s2s"], a.server.ports["s2s_direct_tls"]) == (port_a, direct_a)
        _, romeo = await chat_both_ways(a, b)
        assert b.server.federation is not None
        links = [c for c in b.server.federation.federation.connections() if c.machine.pairs]
        assert {c.outgoing for c in links} == {True, False}

        assert await a.server.reload(replace(a.server.config, federation=off)) == []
        assert a.server.federation is None and "s2s" not in a.server.ports
        assert await _refused(port_a) and await _refused(direct_a)
        for link in links:  # b.test saw a's </stream:stream> on both streams, not a dropped socket
            await asyncio.wait_for(link.finished.wait(), 5)
            assert link.machine.phase is Phase.CLOSED
        assert not list(b.server.federation.federation.connections())
        romeo.send_message(mto="juliet@a.test/test", mbody="still there?", mtype="chat")
        error = await romeo.next_message(10)
        assert error["type"] == "error" and error["error"]["condition"] == "remote-server-not-found"
    finally:
        await a.close()
        await b.close()


async def test_reload_applies_the_policy_and_asks_a_restart_for_the_listener(tmp_path: Path) -> None:
    port = free_port()
    a = await start_server(tmp_path / "a", "a.test", s2s_route(port, "b.test", free_port()))
    try:
        assert a.server.federation is not None
        federation = a.server.federation.federation
        assert federation.policy("b.test").dialback
        new = replace(a.server.config, s2s=replace(a.server.config.s2s, secure_domains=("b.test",),
                                                   port=free_port()))
        restart = await a.server.reload(new)
        assert restart == ["s2s.port"]
        assert not federation.policy("b.test").dialback  # at once, for the next connection
        assert a.server.config.s2s.port == port  # the listener keeps its port until a restart
    finally:
        await a.close()


async def test_garbage_and_stalling_servers_do_not_touch_local_sessions(tmp_path: Path) -> None:
    """A peer sending garbage is cut off; one that accepts and then says nothing makes stanzas for it
    bounce with remote-server-timeout; local chat goes on meanwhile."""
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)  # accepts, never answers
    silent_port = silent.sockets[0].getsockname()[1]
    port = free_port()
    a = await start_server(tmp_path / "a", "a.test", s2s_route(port, "stall.test", silent_port,
                                                             queue_timeout=1.5, auth_timeout=1.0))
    try:
        juliet = await a.client(await a.user("juliet"))
        nurse = await a.client(await a.user("nurse"))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                     b"xmlns:stream='http://etherx.jabber.org/streams' to='a.test' version='1.0'><<<&garbage")
        reply = await asyncio.wait_for(reader.read(65536), 5)
        while not reply.endswith(b"</stream:stream>"):
            more = await asyncio.wait_for(reader.read(65536), 5)
            if not more:
                break
            reply += more
        assert b"<not-well-formed" in reply
        writer.close()
        juliet.send_message(mto="romeo@stall.test", mbody="anyone?", mtype="chat")
        juliet.send_message(mto="nurse@a.test", mbody="still here", mtype="chat")
        assert (await nurse.next_message(5))["body"] == "still here"  # not held up by the stalled peer
        error = await juliet.next_message(15)
        assert error["type"] == "error" and error["error"]["condition"] == "remote-server-timeout"
    finally:
        await a.close()
        silent.close()


async def test_idle_connection_closes_and_the_next_stanza_reconnects(tmp_path: Path) -> None:
    port_a, port_b = free_port(), free_port()
    a = await start_server(tmp_path / "a", "a.test", s2s_route(port_a, "b.test", port_b, idle_timeout=0.3))
    b = await start_server(tmp_path / "b", "b.test", s2s_route(port_b, "a.test", port_a))
    try:
        juliet = await a.client(await a.user("juliet"))
        romeo = await b.client(await b.user("romeo"))
        juliet.send_message(mto="romeo@b.test", mbody="one", mtype="chat")
        assert (await romeo.next_message(10))["body"] == "one"
        assert a.server.federation is not None
        federation = a.server.federation.federation
        [first] = [c for c in federation.connections() if c.outgoing]
        await asyncio.sleep(0.4)
        federation.sweep()
        for _ in range(50):
            if first.closed:
                break
            await asyncio.sleep(0.05)
        assert first.closed
        juliet.send_message(mto="romeo@b.test", mbody="two", mtype="chat")
        assert (await romeo.next_message(10))["body"] == "two"
        [second] = [c for c in federation.connections() if c.outgoing]
        assert second is not first
    finally:
        await a.close()
        await b.close()


async def test_two_virtual_hosts_share_one_connection(tmp_path: Path) -> None:
    """Dialback piggybacking: a2.test authenticates on the stream a.test opened to b.test."""
    port_a, port_b = free_port(), free_port()
    cfg = make_config(tmp_path / "a")
    s2s = s2s_route(port_a, "b.test", port_b)
    cfg = replace(cfg, hosts=(replace(cfg.hosts[0], name="a.test"), replace(cfg.hosts[0], name="a2.test")), s2s=s2s,
                  federation=FederationConfig(enabled=True))
    server = Parlour(cfg)
    await server.start()
    a = Harness(server)
    b = await start_server(tmp_path / "b", "b.test", s2s_route(port_b, "a.test", port_a, static_routes=(
        f"a.test=127.0.0.1:{port_a}", f"a2.test=127.0.0.1:{port_a}")))
    try:
        juliet = await a.client(await a.user("juliet"))
        await server.accounts.create(JID.parse("mercutio@a2.test"), PASSWORD)
        mercutio = await a.client("mercutio@a2.test")
        romeo = await b.client(await b.user("romeo"))
        juliet.send_message(mto="romeo@b.test", mbody="from a", mtype="chat")
        assert (await romeo.next_message(10))["body"] == "from a"
        mercutio.send_message(mto="romeo@b.test", mbody="from a2", mtype="chat")
        got = await romeo.next_message(10)
        assert got["body"] == "from a2" and got["from"].bare == "mercutio@a2.test"
        assert server.federation is not None
        [link] = [c for c in server.federation.federation.connections() if c.outgoing]
        assert link.machine.pairs == {("b.test", "a.test"), ("b.test", "a2.test")}
    finally:
        await a.close()
        await b.close()


async def test_a_blocked_peer_is_refused_at_stream_open(tmp_path: Path) -> None:
    """b.test is blocked on a.test: b.test's stream gets <policy-violation/>, romeo's message comes back
    to him, and juliet (offline) finds nothing stored."""
    port_a, port_b = free_port(), free_port()
    a = await start_server(tmp_path / "a", "a.test", s2s_route(port_a, "b.test", port_b),
                           federation=FederationConfig(enabled=True, blocked_domains=("b.test",)))
    b = await start_server(tmp_path / "b", "b.test", s2s_route(port_b, "a.test", port_a, queue_timeout=2.0))
    try:
        await a.user("juliet")
        romeo = await b.client(await b.user("romeo"))
        romeo.send_message(mto="juliet@a.test", mbody="let me in", mtype="chat")
        error = await romeo.next_message(15)
        assert error["type"] == "error"
        assert error["error"]["condition"] in ("remote-server-not-found", "remote-server-timeout")
        assert a.server.federation is not None
        assert not [c for c in a.server.federation.federation.connections() if not c.outgoing and c.machine.pairs]
        juliet = await a.client("juliet@a.test")
        with pytest.raises(TimeoutError):
            await juliet.next_message(1)  # nothing was stored for her
    finally:
        await a.close()
        await b.close()


async def test_a_bidirectional_stream_carries_the_replies(tmp_path: Path) -> None:
    """XEP-0288: once b.test's own connection to a.test (made to check a.test's dialback key) is gone,
    a.test's stream carries romeo's replies back: one TCP connection serves both ways and no other is
    opened."""
    async with parlour_pair(tmp_path, "a.test", "b.test") as (a, b):
        juliet, romeo = await chat_both_ways(a, b)
        assert a.server.federation is not None and b.server.federation is not None
        fa, fb = a.server.federation.federation, b.server.federation.federation
        [a_out] = [c for c in fa.connections() if c.outgoing]
        assert a_out.machine.bidi
        for link in [c for c in fb.connections() if c.outgoing]:  # idle: it goes
            link.close()
            await asyncio.wait_for(link.finished.wait(), 5)
        opened = {k: v for k, v in (fa.stats | fb.stats).items() if k.startswith("s2s_connections")}
        replies_before = a_out.stanzas_in
        for n in range(3):
            juliet.send_message(mto="romeo@b.test", mbody=f"there {n}", mtype="chat")
            assert (await romeo.next_message(10))["body"] == f"there {n}"
            romeo.send_message(mto="juliet@a.test/test", mbody=f"back {n}", mtype="chat")
            assert (await juliet.next_message(10))["body"] == f"back {n}"
        assert a_out.stanzas_in == replies_before + 3  # the replies came back on a's own stream
        assert [(c.outgoing, c.machine.bidi) for c in fa.connections()] == [(True, True)]
        assert [(c.outgoing, c.machine.bidi) for c in fb.connections()] == [(False, True)]
        assert {k: v for k, v in (fa.stats | fb.stats).items() if k.startswith("s2s_connections")} == opened


async def test_without_bidi_replies_take_a_connection_of_their_own(tmp_path: Path) -> None:
    async with parlour_pair(tmp_path, "a.test", "b.test", bidi=False) as (a, b):
        await chat_both_ways(a, b)
        assert a.server.federation is not None
        [a_out] = [c for c in a.server.federation.federation.connections() if c.outgoing]
        assert not a_out.machine.bidi and a_out.stanzas_in == 0
        [a_in] = [c for c in a.server.federation.federation.connections() if not c.outgoing]
        assert a_in.stanzas_in == 1
