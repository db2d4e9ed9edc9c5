"""The s2s resolver against a real DNS server on loopback: SRV order, XEP-0368, fallback, timeouts."""

from __future__ import annotations

import asyncio
import random
import socket

import pytest

from appliance.net.dns import (
    NoAddress,
    S2SResolver,
    ServiceRefused,
    Target,
    connect,
    interleave,
    order_srv,
    parse_static,
)
from tests.net.dnsserver import DnsServer


async def test_srv_priority_then_direct_tls_first() -> None:
    zone = {
        ("_xmpp-server._tcp.a.test.", "SRV"): ["20 0 5269 backup.a.test.", "10 0 5269 main.a.test."],
        ("_xmpps-server._tcp.a.test.", "SRV"): ["10 0 5270 main.a.test."],
    }
    async with DnsServer(zone) as server:
        resolver = S2SResolver(nameservers=[server.address], timeout=2)
        targets = await resolver.targets("a.test")
    assert targets == [
        Target("main.a.test", 5270, True), Target("main.a.test", 5269, False), Target("backup.a.test", 5269, False)
    ]
    assert ("_xmpps-server._tcp.a.test.", "SRV") in server.asked


async def test_no_srv_falls_back_to_the_domain_on_5269() -> None:
    async with DnsServer({("b.test.", "A"): ["127.0.0.1"]}) as server:
        resolver = S2SResolver(nameservers=[server.address], timeout=2)
        assert await resolver.targets("b.test") == [Target("b.test", 5269, False)]
        assert await resolver.addresses("b.test") == ["127.0.0.1"]


async def test_dot_target_means_no_service() -> None:
    async with DnsServer({("_xmpp-server._tcp.c.test.", "SRV"): ["0 0 0 ."]}) as server:
        resolver = S2SResolver(nameservers=[server.address], timeout=2)
        with pytest.raises(ServiceRefused):
            await resolver.targets("c.test")


async def test_ipv6_and_ipv4_interleaved() -> None:
    zone = {("h.test.", "AAAA"): ["::1", "::2"], ("h.test.", "A"): ["127.0.0.1", "127.0.0.2", "127.0.0.3"]}
    async with DnsServer(zone) as server:
        resolver = S2SResolver(nameservers=[server.address], timeout=2)
        found = await resolver.addresses("h.test")
    assert [":" in a for a in found] == [True, False, True, False, False]  # IPv6 first, then taking turns
    assert sorted(found) == ["127.0.0.1", "127.0.0.2", "127.0.0.3", "::1", "::2"]
    assert interleave([], ["x"]) == ["x"]


async def test_dns_timeout_gives_the_fallback_within_the_limit() -> None:
    silent = ["_xmpp-server._tcp.slow.test.", "_xmpps-server._tcp.slow.test."]
    async with DnsServer({}, silent=silent) as server:
        resolver = S2SResolver(nameservers=[server.address], timeout=0.3)
        async with asyncio.timeout(3):
            assert await resolver.targets("slow.test") == [Target("slow.test", 5269, False)]


async def test_static_map_wins_over_dns() -> None:
    async with DnsServer({("_xmpp-server._tcp.d.test.", "SRV"): ["0 0 5269 elsewhere.test."]}) as server:
        resolver = S2SResolver(nameservers=[server.address], static=parse_static(["d.test=[::1]:5999"]))
        assert await resolver.targets("D.test") == [Target("::1", 5999, False)]
        assert server.asked == []


def test_weights_decide_the_order_within_a_priority() -> None:
    heavy, light = Target("heavy", 1), Target("light", 1)
    firsts = [order_srv([(0, 90, heavy), (0, 10, light)], random.Random(seed))[0] for seed in range(200)]
    assert 150 < firsts.count(heavy) < 200  # about 90 %, never all
    assert order_srv([(5, 0, light), (1, 0, heavy)]) == [heavy, light]


async def test_connect_races_addresses_and_skips_dead_targets() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    closed.bind(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()  # nobody listens there: connection refused
    zone = {
        ("_xmpp-server._tcp.e.test.", "SRV"): [f"1 0 {dead_port} dead.e.test.", f"2 0 {port} live.e.test."],
        ("dead.e.test.", "A"): ["127.0.0.1"],
        ("live.e.test.", "AAAA"): ["::1"],  # nobody on ::1 at that port: IPv4 must win the race
        ("live.e.test.", "A"): ["127.0.0.1"],
    }
    try:
        async with DnsServer(zone) as server:
            resolver = S2SResolver(nameservers=[server.address], timeout=2)
            connected = await connect(resolver, "e.test", timeout=3)
        assert connected.target == Target("live.e.test", port, False)
        assert connected.address == "127.0.0.1"
        connected.sock.close()
    finally:
        listener.close()


async def test_connect_says_when_dns_has_no_address() -> None:
    async with DnsServer({}) as server:
        resolver = S2SResolver(nameservers=[server.address], timeout=2)
        with pytest.raises(NoAddress):
            await connect(resolver, "nowhere.test", timeout=2)


async def test_connect_fails_when_nothing_answers() -> None:
    async with DnsServer({("f.test.", "A"): ["127.0.0.1"]}) as server:
        resolver = S2SResolver(nameservers=[server.address], static={"f.test": ("127.0.0.1", 1)})
        with pytest.raises(OSError):
            await connect(resolver, "f.test", timeout=2)
