"""The built-in STUN/TURN server: a client learns it through XEP-0215, then real TURN clients (aioice, an
independent implementation, and coturn's turnutils_uclient) allocate, relay and refresh through Parlour
with the credentials it was given; expired, forged and over-quota requests are refused."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aioice.stun
import aioice.turn
import pytest

from appliance.config.model import TurnConfig
from appliance.util.turn_rest import rest_credentials
from tests.integration.harness import Harness, free_port, make_config, start_harness
from tests.integration.stanzas import iq

EXTDISCO = "urn:xmpp:extdisco:2"


class Collect(asyncio.DatagramProtocol):
    """Keeps what arrives: the TURN client side and the peer side of a test both use it."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.received.put_nowait((data, (addr[0], addr[1])))


class Echo(Collect):
    def datagram_received(self, data: bytes, addr: tuple) -> None:
        super().datagram_received(data, addr)
        self.transport.sendto(data, addr)


async def turn_harness(tmp_path: Path, **turn: Any) -> Harness:
    # port 0: any free port; the test peers live on loopback, which relays may not reach by default
    turn = {"port": 0, "denied_peers": (), **turn}
    settings = TurnConfig(enabled=True, interfaces=("127.0.0.1",), relay_address="127.0.0.1", min_port=free_port(),
                          **turn)
    settings = replace(settings, max_port=settings.min_port + 200)
    return await start_harness(tmp_path, turn=settings)


async def announced(harness: Harness, user: str) -> dict[tuple[str, str], dict[str, str]]:
    """XEP-0215's answer to `user`: (type, transport) -> the service's attributes."""
    client = await harness.client(user)
    reply = await iq(client, "get", f"<services xmlns='{EXTDISCO}'/>", to=harness.domain)
    return {(s.get("type"), s.get("transport")): dict(s.attrib) for s in reply.iter(f"{{{EXTDISCO}}}service")}


async def allocate(server: tuple[str, int], username: str, password: str,
                   transport: str = "udp") -> tuple[Any, Collect]:
    return await aioice.turn.create_turn_endpoint(  # type: ignore[return-value]
        Collect, server_addr=server, username=username, password=password, transport=transport)


async def test_a_client_gets_credentials_and_relays_through_parlour(tmp_path: Path) -> None:
    harness = await turn_harness(tmp_path)
    loop = asyncio.get_running_loop()
    peer_transport, peer = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    try:
        alice = await harness.user("alice")
        services = await announced(harness, alice)
        ports = harness.server.ports
        assert set(services) == {("stun", "udp"), ("turn", "udp"), ("turn", "tcp")}
        assert services[("turn", "udp")]["port"] == str(ports["turn_udp"])
        assert services[("turn", "udp")]["host"] == harness.domain
        assert services[("stun", "udp")].get("username") is None
        username, password = services[("turn", "udp")]["username"], services[("turn", "udp")]["password"]
        assert username.endswith(f":{alice}")

        peer_address = peer_transport.get_extra_info("sockname")
        for transport in ("udp", "tcp"):
            relay, client = await allocate(("127.0.0.1", ports[f"turn_{transport}"]), username, password, transport)
            relayed = relay.get_extra_info("sockname")
            assert relayed[0] == "127.0.0.1" and harness.server.config.turn.min_port <= relayed[1]
            for n in range(3):  # the first send makes a permission and binds a channel; later ones use it
                relay.sendto(b"voice %d" % n, peer_address)
                data, source = await asyncio.wait_for(peer.received.get(), 5)
                assert (data, source) == (b"voice %d" % n, relayed)  # the peer sees the relay, not the client
                echoed, from_peer = await asyncio.wait_for(client.received.get(), 5)
                assert (echoed, from_peer) == (b"voice %d" % n, peer_address)
            relay.close()
        assert harness.server.calls is not None and harness.server.calls.server.stats.relayed_packets >= 12
    finally:
        peer_transport.close()
        await harness.close()


def client_protocol(relay: Any) -> Any:
    """aioice's TURN client protocol behind its transport, to send a Refresh or ChannelBind by hand."""
    return relay._TurnTransport__inner_protocol


def stun_request(server: tuple[str, int], message: aioice.stun.Message) -> aioice.stun.Message:
    """One request over UDP with aioice's codec (a second, independent implementation), its answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(bytes(message), server)
        return aioice.stun.parse_message(sock.recv(2048))


async def test_binding_expired_forged_and_refreshed_credentials(tmp_path: Path) -> None:
    harness = await turn_harness(tmp_path)
    try:
        server = ("127.0.0.1", harness.server.ports["turn_udp"])
        binding = aioice.stun.Message(aioice.stun.Method.BINDING, aioice.stun.Class.REQUEST)
        answer = await asyncio.to_thread(stun_request, server, binding)
        assert answer.message_class == aioice.stun.Class.RESPONSE
        assert answer.attributes["XOR-MAPPED-ADDRESS"][0] == "127.0.0.1"

        secret = harness.server.calls.secret  # type: ignore[union-attr]
        expired = rest_credentials(secret, "alice@localhost", time.time() - 1)
        with pytest.raises(aioice.stun.TransactionFailed) as refused:
            await allocate(server, *expired)
        assert refused.value.response.attributes["ERROR-CODE"][0] == 401

        username, _ = rest_credentials(secret, "alice@localhost", time.time() + 600)
        with pytest.raises(aioice.stun.TransactionFailed) as forged:
            await allocate(server, username, "not the password")
        assert forged.value.response.attributes["ERROR-CODE"][0] == 401

        good = rest_credentials(secret, "alice@localhost", time.time() + 600)
        relay, _ = await allocate(server, *good)
        (allocation,) = harness.server.calls.server.allocations.by_tuple.values()  # type: ignore[union-attr]
        before = allocation.expires
        refresh = aioice.stun.Message(aioice.stun.Method.REFRESH, aioice.stun.Class.REQUEST)
        refresh.attributes["LIFETIME"] = 1200
        response, _ = await client_protocol(relay).request_with_retry(refresh)
        assert response.attributes["LIFETIME"] == 1200
        assert allocation.expires - before > 500  # the relay now lives 20 minutes from the refresh
        relay.close()
        await asyncio.sleep(0.2)  # aioice's close sends Refresh(lifetime=0): the allocation is gone
        assert len(harness.server.calls.server.allocations) == 0  # type: ignore[union-attr]
    finally:
        await harness.close()


async def test_quota_and_denied_peers(tmp_path: Path) -> None:
    harness = await turn_harness(tmp_path, user_quota=2)
    try:
        calls = harness.server.calls
        assert calls is not None
        server = ("127.0.0.1", harness.server.ports["turn_udp"])
        credentials = rest_credentials(calls.secret, "bob@localhost", time.time() + 600)
        first = [await allocate(server, *credentials) for _ in range(2)]
        with pytest.raises(aioice.stun.TransactionFailed) as over:
            await allocate(server, *credentials)
        assert over.value.response.attributes["ERROR-CODE"][0] == 486
        other = rest_credentials(calls.secret, "carol@localhost", time.time() + 600)
        relay, _ = await allocate(server, *other)  # the quota is per user
        relay.close()
        for transport, _ in first:
            transport.close()
    finally:
        await harness.close()

    harness = await turn_harness(tmp_path / "denied", denied_peers=("127.0.0.0/8",))
    try:
        calls = harness.server.calls
        assert calls is not None
        server = ("127.0.0.1", harness.server.ports["turn_udp"])
        relay, _ = await allocate(server, *rest_credentials(calls.secret, "bob@localhost", time.time() + 600))
        with pytest.raises(aioice.stun.TransactionFailed) as denied:
            await client_protocol(relay).channel_bind(0x4001, ("127.0.0.1", 9))
        assert denied.value.response.attributes["ERROR-CODE"][0] == 403
        relay.close()
    finally:
        await harness.close()


UCLIENT = shutil.which("turnutils_uclient")
PEER = shutil.which("turnutils_peer")


@pytest.mark.skipif(UCLIENT is None or PEER is None, reason="needs coturn's turnutils (apt install coturn)")
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_coturn_client_relays_through_parlour(tmp_path: Path, transport: str) -> None:
    """coturn's own test client and peer: allocations with EVEN-PORT and a reserved port (RTP and RTCP),
    channels, and 100 messages to the peer and back, with credentials from the shared secret (REST scheme)."""
    harness = await turn_harness(tmp_path)
    peer_port = free_port()  # turnutils_peer answers on this port and the next (RTCP)
    peer = await asyncio.create_subprocess_exec(PEER, "-L", "127.0.0.1", "-p", str(peer_port),
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        calls = harness.server.calls
        assert calls is not None
        command = [UCLIENT, "-W", calls.secret, "-u", "alice@localhost", "-e", "127.0.0.1", "-r", str(peer_port),
                   "-n", "50", "-l", "160", "-z", "5", "-p", str(harness.server.ports[f"turn_{transport}"]),
                   *(["-t"] if transport == "tcp" else []), "127.0.0.1"]
        process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output = (await asyncio.wait_for(process.communicate(), 60))[0].decode(errors="replace")
        totals = re.findall(r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)", output)
        assert totals == [("100", "100")], output[-2000:]
        assert "Total lost packets 0 " in output, output[-2000:]
        assert "error" not in output.lower(), output[-2000:]
        assert calls.server.stats.relayed_packets == 200  # each message to the peer and back went through us
    finally:
        peer.kill()
        await peer.wait()
        await harness.close()


async def test_a_taken_port_leaves_calls_off_and_the_server_up(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        harness = await turn_harness(tmp_path, port=taken.getsockname()[1])
        try:
            assert "turn_udp" not in harness.server.ports
            alice = await harness.user("alice")
            assert await announced(harness, alice) == {}  # nothing offered that does not run
        finally:
            await harness.close()


def test_turn_settings_in_the_config_file(tmp_path: Path) -> None:
    config = make_config(tmp_path, turn=TurnConfig(enabled=True, port=free_port()))
    assert config.turn.denied_peers[0] == "127.0.0.0/8"  # loopback is out of a relay's reach by default
