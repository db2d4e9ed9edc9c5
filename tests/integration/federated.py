"""Two Parlour servers federating over real sockets on loopback, each with its own local CA, finding each
other through static routes (the s2s resolver's map). Shared by the Parlour-to-Parlour federation tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from appliance.app import Parlour
from appliance.config.model import FederationConfig, S2SConfig
from tests.integration.harness import Client, Harness, free_port, make_config

FEDERATION_ON = FederationConfig(enabled=True)


async def start_server(state_dir: Path, name: str, s2s: S2SConfig,
                       federation: FederationConfig = FEDERATION_ON) -> Harness:
    """A started Parlour serving `name` with federation on."""
    cfg = make_config(state_dir)
    cfg = replace(cfg, hosts=(replace(cfg.hosts[0], name=name),), s2s=s2s, federation=federation)
    server = Parlour(cfg)
    await server.start()
    return Harness(server)


SERVICES = ("conference", "pubsub")  # the peer's service domains reached over s2s too


def s2s_route(port: int, peer: str, peer_port: int, **changes: object) -> S2SConfig:
    """An s2s listener on 127.0.0.1:`port` reaching `peer` (and its chat and pubsub services) at
    127.0.0.1:`peer_port`, with short timeouts (the direct TLS listener on a free port)."""
    routes = tuple(f"{domain}=127.0.0.1:{peer_port}" for domain in (peer, *(f"{s}.{peer}" for s in SERVICES)))
    return replace(S2SConfig(interfaces=("127.0.0.1",), port=port, direct_tls_port=free_port(),
                             static_routes=routes, queue_timeout=3.0,
                             connect_timeout=2.0, auth_timeout=5.0), **changes)  # type: ignore[arg-type]


@asynccontextmanager
async def parlour_pair(base: Path, first: str, second: str, *,
                       first_federation: FederationConfig = FEDERATION_ON,
                       second_federation: FederationConfig = FEDERATION_ON,
                       **s2s: object) -> AsyncIterator[tuple[Harness, Harness]]:
    """Two Parlours serving `first` and `second`, each routing to the other; `s2s` changes both [s2s]."""
    port_a, port_b = free_port(), free_port()
    async with _both(lambda: start_server(base / first, first, s2s_route(port_a, second, port_b, **s2s),
                                          first_federation),
                     lambda: start_server(base / second, second, s2s_route(port_b, first, port_a, **s2s),
                                          second_federation)) as servers:
        yield servers


@asynccontextmanager
async def _both(first: Callable[[], Awaitable[Harness]],
                second: Callable[[], Awaitable[Harness]]) -> AsyncIterator[tuple[Harness, Harness]]:
    """Start `first`, then `second` (the first closes if that fails); both close after."""
    a = await first()
    try:
        b = await second()
    except BaseException:
        await a.close()
        raise
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def chat_both_ways(a: Harness, b: Harness) -> tuple[Client, Client]:
    """juliet on `a` and romeo on `b` log in and exchange a message each way; returns both clients."""
    juliet = await a.client(await a.user("juliet"))
    romeo = await b.client(await b.user("romeo"))
    juliet.send_message(mto=f"romeo@{b.domain}", mbody="Wherefore art thou?", mtype="chat")
    assert (await romeo.next_message(10))["body"] == "Wherefore art thou?"
    romeo.send_message(mto=f"juliet@{a.domain}/test", mbody="Here.", mtype="chat")
    assert (await juliet.next_message(10))["body"] == "Here."
    return juliet, romeo


@asynccontextmanager
async def trusting_each_other(tmp_path: Path, *, a_reaches_b: Callable[[int], int] | None = None,
                              b_reaches_a: Callable[[int], int] | None = None,
                              ) -> AsyncIterator[tuple[Harness, Harness]]:
    """a.test and b.test, each trusting the other's local CA and requiring valid certificates (a first
    start makes the CAs; the certificates stay for the second): SASL EXTERNAL both ways. a.test dials
    b.test's s2s port through `a_reaches_b` (a relay's port for it, say), and b.test a.test's through
    `b_reaches_a`."""
    port_a, port_b = free_port(), free_port()
    first = [await start_server(tmp_path / d, d, s2s_route(p, peer, q)) for d, peer, p, q in (
        ("a.test", "b.test", port_a, port_b), ("b.test", "a.test", port_b, port_a))]
    for h in first:
        await h.close()
    bundle = tmp_path / "both.pem"
    bundle.write_bytes(b"".join(h.ca_file.read_bytes() for h in first))
    strict = {"require_valid_certificates": True, "ca_bundle": bundle}
    to_b = a_reaches_b(port_b) if a_reaches_b else port_b
    to_a = b_reaches_a(port_a) if b_reaches_a else port_a
    async with _both(lambda: start_server(tmp_path / "a.test", "a.test", s2s_route(port_a, "b.test", to_b, **strict)),
                     lambda: start_server(tmp_path / "b.test", "b.test", s2s_route(port_b, "a.test", to_a, **strict))
                     ) as servers:
        yield servers
