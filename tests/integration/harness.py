"""Helpers for integration tests: a real server on ephemeral loopback ports, real slixmpp clients."""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
from dataclasses import replace
from pathlib import Path
from typing import Any

import slixmpp

from appliance.app import Parlour
from appliance.catalog import default_config
from appliance.config.model import Config
from appliance.modules.proxy65 import Proxy65Options
from appliance.xmpp.jid import JID

PASSWORD = "correct horse"


# Below the kernel's ephemeral range (32768-60999 on Linux): a port picked now and bound later by the
# server must not be taken meanwhile as the source port of some outgoing connection (a load generator or
# another test run on the same machine opens thousands of them).
PICKED_PORTS = range(20_000, 32_768)
_handed_out: set[int] = set()  # never the same port twice in one run (Pebble's four ports, say)


def free_port() -> int:
    """A currently free loopback port for a listener that is bound later (0 means "disabled" for the
    direct TLS listener, so tests that need one pick it here)."""
    for _ in range(200):
        port = random.choice(PICKED_PORTS)
        if port in _handed_out:  # free now, but a caller may be about to bind it
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free loopback port in {PICKED_PORTS}")


def make_config(state_dir: Path, **overrides: Any) -> Config:
    """Loopback-only config on ephemeral ports; keyword args replace sections (e.g. c2s=...)."""
    cfg = default_config(state_dir)
    c2s = replace(cfg.c2s, port=0, direct_tls_port=free_port(), interfaces=("127.0.0.1",))
    limits = replace(cfg.limits, scram_iterations=4096, auth_failure_delay=0.0)
    http = replace(cfg.http, port=0, tls_port=0, interfaces=("127.0.0.1",))  # web listener, same idea
    host = cfg.hosts[0]  # the SOCKS5 proxy on any free port, not 7777 that parallel tests would share
    proxy = replace(host.modules.of(Proxy65Options), port=0, address="127.0.0.1")
    hosts = (replace(host, modules=host.modules.with_options(proxy)),)
    s2s = replace(cfg.s2s, port=free_port(), direct_tls_port=free_port(), interfaces=("127.0.0.1",))
    cfg = replace(cfg, c2s=c2s, limits=limits, http=http, hosts=hosts, s2s=s2s)
    return replace(cfg, **overrides) if overrides else cfg


class Client(slixmpp.ClientXMPP):
    """A slixmpp client that trusts the server's local CA and records what it receives."""

    def __init__(self, jid: str, password: str, ca_file: Path, *, check_hostname: bool = True) -> None:
        super().__init__(jid, password)
        self.enable_direct_tls = False
        for plugin in ("xep_0030", "xep_0199", "xep_0203"):
            self.register_plugin(plugin)
        self.ssl_context = ssl.create_default_context(cafile=str(ca_file))
        self.ssl_context.check_hostname = check_hostname
        self.messages: asyncio.Queue[slixmpp.Message] = asyncio.Queue()
        self.presences: asyncio.Queue[slixmpp.Presence] = asyncio.Queue()
        self.started = asyncio.Event()
        self.auth_failed = asyncio.Event()
        self.add_event_handler("session_start", self._on_start)
        self.add_event_handler("failed_auth", lambda _e: self.auth_failed.set())
        self.add_event_handler("message", self.messages.put_nowait)
        self.add_event_handler("presence", self.presences.put_nowait)

    async def _on_start(self, _event: Any) -> None:
        self.started.set()

    async def next_message(self, timeout: float = 5.0) -> slixmpp.Message:
        return await asyncio.wait_for(self.messages.get(), timeout)

    async def next_presence(self, timeout: float = 5.0, *, ptype: str | None = None) -> slixmpp.Presence:
        while True:
            presence = await asyncio.wait_for(self.presences.get(), timeout)
            if ptype is None or presence["type"] == ptype:
                return presence


class Harness:
    """A started Parlour plus factories for accounts and clients; closes everything at the end."""

    def __init__(self, server: Parlour) -> None:
        self.server = server
        self.clients: list[Client] = []

    @property
    def domain(self) -> str:
        return self.server.config.hosts[0].name

    @property
    def port(self) -> int:
        return self.server.ports["c2s"]

    @property
    def tls_port(self) -> int:
        return self.server.ports["c2s_direct_tls"]

    @property
    def http_port(self) -> int:
        return self.server.ports["http"]

    @property
    def https_port(self) -> int:
        return self.server.ports["https"]

    @property
    def ca_file(self) -> Path:
        return self.server.config.server.state_dir / "certs" / "ca.pem"

    # False for servers whose certificate names their domain only in ways Python's ssl does not check
    client_check_hostname = True

    async def user(self, name: str, password: str = PASSWORD) -> str:
        jid = f"{name}@{self.domain}"
        assert self.server.accounts is not None
        await self.server.accounts.create(JID.parse(jid), password)
        return jid

    async def client(
        self, jid: str, password: str = PASSWORD, *, resource: str = "test", presence: bool = True,
        roster: bool = True,
    ) -> Client:
        """Connect, log in, bind, optionally fetch the roster and send initial presence."""
        client = Client(f"{jid}/{resource}", password, self.ca_file, check_hostname=self.client_check_hostname)
        self.clients.append(client)
        client.connect(host="127.0.0.1", port=self.port)
        await asyncio.wait_for(client.started.wait(), 15)
        if roster:
            await client.get_roster()
        if presence:
            client.send_presence()
        return client

    async def close(self) -> None:
        for client in self.clients:
            if client.is_connected():
                client.disconnect()
        await asyncio.sleep(0.05)
        await self.server.stop()


async def start_harness(state_dir: Path, **overrides: Any) -> Harness:
    server = Parlour(make_config(state_dir, **overrides))
    await server.start()
    return Harness(server)
