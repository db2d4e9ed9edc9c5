"""Federation from a cluster: three Parlour nodes serving parlour.test behind SRV records with one target
per node, and a real Prosody (prosody.test) in a network namespace. Users on each node write to a Prosody
user (each node opens its own s2s link, and Prosody's dialback check may reach any node: they share the
secret), and Prosody's user writes to users on every node (what one incoming link brings reaches them
all through the cluster)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from tests.integration.cluster_nodes import Cluster, running_cluster
from tests.integration.cross_server import peer_client, subscribed_both_ways
from tests.integration.harness import Client, free_port
from tests.integration.prosody_peer import FederationCA, Namespace, ProsodyPeer, unavailable
from tests.integration.pubsub_helpers import items_of, next_event, payload, watch_events
from tests.net.dnsserver import DnsServer
from tests.pgserver import PostgresServer
from tests.redisserver import RedisServer

REASON = unavailable()
pytestmark = [pytest.mark.skipif(REASON is not None, reason=f"Prosody federation tests: {REASON}"),
              pytest.mark.asyncio(loop_scope="module")]

PARLOUR, PROSODY = "parlour.test", "prosody.test"
NODES = ("n1", "n2", "n3")


@dataclass
class World:
    cluster: Cluster
    prosody: ProsodyPeer
    ca: FederationCA
    clients: list[Client]

    async def romeo(self) -> Client:
        return await peer_client(f"romeo@{PROSODY}/phone", "r0me0", self.ca.pem, self.prosody.address, self.clients)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer,
                redis_server: RedisServer) -> AsyncIterator[World]:
    base = tmp_path_factory.mktemp("cluster-federation")
    redis_server.restart(empty=True)
    ca = FederationCA(base / "ca")
    with Namespace() as ns:
        ports = {name: free_port() for name in NODES}
        zone = {
            (f"_xmpp-server._tcp.{PROSODY}.", "SRV"): [f"0 5 5269 {PROSODY}."],
            (f"{PROSODY}.", "A"): [ns.inner],
            (f"_xmpp-server._tcp.{PARLOUR}.", "SRV"): [f"0 5 {port} {PARLOUR}." for port in ports.values()],
            (f"{PARLOUR}.", "A"): [ns.outer],
        }

        def s2s(node: str) -> str:
            return ("[federation]\nenabled = true\n\n"
                    f'[s2s]\ninterfaces = ["{ns.outer}"]\nport = {ports[node]}\ndirect_tls_port = 0\n'
                    f'nameservers = ["{ns.outer}:53"]\ndns_timeout = "2s"\nconnect_timeout = "3s"\n'
                    'auth_timeout = "10s"\nqueue_timeout = "15s"\n\n')

        async with DnsServer(zone, host=ns.outer, port=53):
            prosody = ProsodyPeer(base / "prosody", ns, PROSODY, certificate=ca.issue(PROSODY), cafile=ca.pem,
                                  users={"romeo": "r0me0"})
            async with running_cluster(base, postgres.create_database(), redis_server.url, NODES, domain=PARLOUR,
                                       extra=s2s) as cluster:
                await prosody.start()
                running = World(cluster, prosody, ca, [])
                try:
                    yield running
                finally:
                    for client in running.clients:
                        client.abort()
                    await prosody.stop()


async def test_users_on_every_node_and_a_prosody_user_write_to_each_other(world: World) -> None:
    cluster = world.cluster
    romeo = await world.romeo()
    users = {node: await cluster.add_user(f"user-{node}") for node in NODES}
    clients = {node: await cluster.client(node, jid) for node, jid in users.items()}

    for node, client in clients.items():  # out through each node's own link
        client.send_message(mto=f"romeo@{PROSODY}", mbody=f"from {node}", mtype="chat")
    got = {}
    for _ in NODES:
        message = await romeo.next_message(30)
        got[message["body"]] = message["from"].bare
    assert got == {f"from {node}": users[node] for node in NODES}

    for node, jid in users.items():  # in through whichever node Prosody reached, on to every node
        romeo.send_message(mto=jid, mbody=f"to {node}", mtype="chat")
    for node, client in clients.items():
        message = await client.next_message(30)
        assert message["body"] == f"to {node}" and message["from"].bare == f"romeo@{PROSODY}"


NICK = "http://jabber.org/protocol/nick"


async def test_publishers_on_every_node_notify_a_remote_contact_whose_caps_one_node_learnt(world: World) -> None:
    """romeo's presence (with nick+notify in his caps) comes in through the one node his server's link
    reached; that node learns his caps and tells the others, so a publisher on any node notifies him."""
    cluster = world.cluster
    romeo = await peer_client(f"romeo@{PROSODY}/tablet", "r0me0", world.ca.pem, world.prosody.address, world.clients,
                              plugins=("xep_0004", "xep_0060", "xep_0115", "xep_0163"))
    watch_events(romeo)
    users = {node: await cluster.add_user(f"poet-{node}") for node in NODES}
    clients = {node: await cluster.client(node, jid) for node, jid in users.items()}
    for client in clients.values():
        client.register_plugin("xep_0060")
        await subscribed_both_ways(client, romeo)
    romeo.plugin["xep_0030"].add_feature(f"{NICK}+notify")
    await romeo.plugin["xep_0115"].update_caps()  # presence with the new caps to his contacts on parlour.test

    for node, client in clients.items():
        for _attempt in range(8):  # until the node that got romeo's presence has learnt his caps
            await client.plugin["xep_0060"].publish(users[node], NICK, payload=payload(
                f"<nick xmlns='{NICK}'>{node}</nick>"))
            try:
                await next_event(romeo, lambda e, n=node: [i[0].text for i in items_of(e, NICK)] == [n], timeout=2)
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError(f"no notification from the publisher on {node} reached romeo")
