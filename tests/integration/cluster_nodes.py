"""A Parlour cluster for tests: N node processes (`python -m appliance run`) sharing a real PostgreSQL and a
real Redis on loopback, each with its own c2s port and state folder; slixmpp clients log in to any node."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from appliance.app.storage import Storage
from appliance.config.model import StorageConfig
from appliance.core.accounts import AccountService
from appliance.xmpp.jid import JID
from tests.integration.harness import Client, free_port
from tests.integration.process import TIMEOUT, ServerProcess

DOMAIN = "localhost"
PASSWORD = "correct horse"
# Seconds; a killed node counts as dead after EXPIRY. Not much shorter: on a loaded CI machine a live
# node's heartbeat can be late by a second or more, and it would be taken for dead.
HEARTBEAT = 0.5
EXPIRY = 3.0
ADMIN = "boss@localhost"  # may use the console of the first node (the only one with HTTP)


@dataclass
class Node:
    name: str
    config: Path
    port: int
    process: ServerProcess
    http_port: int = 0

    @property
    def ca_file(self) -> Path:
        return self.config.parent / f"state-{self.name}" / "certs" / "ca.pem"

    @property
    def log(self) -> str:
        return self.process.log.read_text(errors="replace")


@dataclass
class Cluster:
    nodes: dict[str, Node]
    folder: Path
    pg_url: str
    clients: list[Client] = field(default_factory=list)
    storage: Storage | None = None  # the shared database, opened by the test for creating accounts
    domain: str = DOMAIN
    extra: Callable[[str], str] = lambda _node: ""  # more of a node's parlour.toml (e.g. [s2s]), by node name

    def config_text(self, name: str, port: int, pg_url: str, redis_url: str, http_port: int = 0) -> str:
        """A node's parlour.toml; with `http_port`, its console (administrator ADMIN) on plain HTTP."""
        http = (f'[http]\ninterfaces = ["127.0.0.1"]\nport = {http_port}\nhttps = false\n\n' if http_port
                else "[http]\nenabled = false\n\n")
        return (
            f'[server]\nstate_dir = "state-{name}"\nadmins = ["{ADMIN}"]\n\n'
            f'[c2s]\ninterfaces = ["127.0.0.1"]\nport = {port}\ndirect_tls_port = 0\n\n'
            "[limits]\nscram_iterations = 4096\nauth_failure_delay = 0\n\n"
            f"{http}"
            f'[storage]\nurl = "{pg_url}"\n\n'
            f'[cluster]\nenabled = true\nredis_url = "{redis_url}"\nnode = "{name}"\n'
            f"heartbeat = {HEARTBEAT}\nexpiry = {EXPIRY}\n\n"
            f"{self.extra(name)}"
            f'[hosts."{self.domain}"]\n'
        )

    async def add_user(self, user: str) -> str:
        """Create `user@localhost` in the shared database (as `parlour user add` would, without a process)."""
        if self.storage is None:
            self.storage = await Storage.open(self.folder / "test-state", StorageConfig(url=self.pg_url))
        jid = f"{user}@{self.domain}"
        await AccountService(self.storage.stores.accounts, iterations=4096).create(JID.parse(jid), PASSWORD)
        return jid

    async def client(self, node: str, jid: str, *, resource: str = "test", presence: bool = True) -> Client:
        """A client logged in on `node`, roster fetched and (by default) initial presence sent."""
        target = self.nodes[node]
        client = Client(f"{jid}/{resource}", PASSWORD, target.ca_file)
        self.clients.append(client)
        client.connect(host="127.0.0.1", port=target.port)
        await asyncio.wait_for(client.started.wait(), TIMEOUT)
        await client.get_roster()
        if presence:
            client.send_presence()
            await ping(client)  # the presence was handled before the answer
        return client

    async def kill(self, node: str) -> None:
        await self.nodes[node].process.kill()

    async def start(self, node: str) -> None:
        await self.nodes[node].process.start()

    async def reload_modules(self, node: str, settings: str) -> None:
        """Add `settings` (module options) to `node`'s parlour.toml and wait until it has reloaded: its
        modules are made anew."""
        target = self.nodes[node]
        reloads = target.log.count("configuration reloaded")
        target.config.write_text(target.config.read_text() + "\n" + settings)
        async with asyncio.timeout(TIMEOUT):
            while target.log.count("configuration reloaded") == reloads:
                await asyncio.sleep(0.05)

    def close_clients(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                client.abort()
        self.clients.clear()


async def ping(client: Client) -> None:
    """A round trip through the client's own node: every stanza it sent before is handled (and what
    those stanzas queued for other nodes is in Redis: acknowledged means durable)."""
    answer = await client.plugin["xep_0199"].send_ping(client.boundjid.domain, timeout=TIMEOUT)
    assert answer["type"] == "result"


@contextlib.asynccontextmanager
async def running_cluster(folder: Path, pg_url: str, redis_url: str, names: tuple[str, ...], *, domain: str = DOMAIN,
                          extra: Callable[[str], str] | None = None) -> AsyncIterator[Cluster]:
    """Start the nodes one after the other (the first creates the schema); stop them all at the end. The
    nodes serve `domain`; `extra(node)` adds to each node's configuration."""
    cluster = Cluster({}, folder, pg_url, domain=domain)
    if extra is not None:
        cluster.extra = extra
    for name in names:
        port, http_port = free_port(), free_port() if not cluster.nodes else 0
        config = folder / f"{name}.toml"
        config.write_text(cluster.config_text(name, port, pg_url, redis_url, http_port))
        cluster.nodes[name] = Node(name, config, port, ServerProcess(config, folder / f"{name}.log"), http_port)
    try:
        first, *others = cluster.nodes.values()
        await first.process.start()  # creates the schema; then the others together
        await asyncio.gather(*(node.process.start() for node in others))
        yield cluster
    finally:
        cluster.close_clients()
        codes = await asyncio.gather(*(stop(node.process) for node in cluster.nodes.values()))
        if cluster.storage is not None:
            await cluster.storage.close()
    assert codes == [0] * len(codes), f"nodes did not stop by themselves on SIGTERM: {codes}"


async def stop(process: ServerProcess) -> int:
    """SIGTERM and the exit code; a node that does not stop within 30 s is killed (-9)."""
    running = process.process
    if running is None:
        return 0
    await process.stop()
    return running.returncode


async def subscribe_both(a: Client, a_jid: str, b: Client, b_jid: str) -> None:
    """Mutual presence subscription between two logged-in clients (auto-approved by slixmpp)."""
    for client in (a, b):
        client.auto_authorize = True
        client.auto_subscribe = True
    a.send_presence(pto=b_jid, ptype="subscribe")
    b.send_presence(pto=a_jid, ptype="subscribe")
    for _ in range(200):  # up to 20 s: on a loaded 2-core machine the four-step handshake crosses nodes slowly
        if (a.client_roster[b_jid]["subscription"] == "both" and b.client_roster[a_jid]["subscription"] == "both"):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no mutual subscription: {a.client_roster[b_jid]['subscription']}, "
                         f"{b.client_roster[a_jid]['subscription']}")
