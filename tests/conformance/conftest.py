"""The `server` fixture: every conformance test runs against Parlour and, with PARLOUR_CONFORMANCE_PEERS=1,
against a private ejabberd and Prosody (Debian packages) started once per session from ./peers.

All three serve the domain `conformance.local` with accounts alice, bob, carol, dave (password PASSWORD),
PLAIN over plain TCP on loopback, and in-band registration open to loopback.

A test that cannot pass on a peer because the peer deviates from the specification is marked
`@xfail_on("ejabberd", reason="RFC 6120 §x.y: ejabberd does ...")` (strict: it must fail there).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

DOMAIN = "conformance.local"
PASSWORD = "secret-pass"
USERS = ("alice", "bob", "carol", "dave")
SERVERS = ("parlour", "ejabberd", "prosody")
PEERS_DIR = Path(__file__).parent / "peers"
PEERS_ENV = "PARLOUR_CONFORMANCE_PEERS"
PEER_PORTS = {"ejabberd": 25222, "prosody": 25322}
PEER_BINARIES = {"ejabberd": "/usr/sbin/ejabberdctl", "prosody": "/usr/bin/prosody"}

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ServerInfo:
    """Where a server under test listens and what it serves."""

    name: str  # "parlour", "ejabberd" or "prosody"
    host: str
    port: int
    domain: str = DOMAIN
    password: str = PASSWORD
    users: tuple[str, ...] = USERS

    def jid(self, user: str, resource: str | None = None) -> str:
        bare = f"{user}@{self.domain}"
        return f"{bare}/{resource}" if resource else bare


def xfail_on(*names: str, reason: str) -> Callable[[F], F]:
    """Mark the test as a strict xfail for these servers' params (cite the spec section in `reason`)."""

    def decorate(func: F) -> F:
        marks = list(getattr(func, "_conformance_xfail", []))
        marks.append((names, reason))
        func._conformance_xfail = marks  # type: ignore[attr-defined]
        return func

    return decorate


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        func = getattr(item, "function", None)
        if callspec is None or func is None or "server" not in callspec.params:
            continue
        for names, reason in getattr(func, "_conformance_xfail", []):
            if callspec.params["server"] in names:
                item.add_marker(pytest.mark.xfail(strict=True, reason=reason))


def _peer_skip_reason(name: str) -> str | None:
    if os.environ.get(PEERS_ENV) != "1":
        return f"{name}: set {PEERS_ENV}=1 (make conformance-peers) to run against the peers"
    if not Path(PEER_BINARIES[name]).exists():
        return f"{name}: {PEER_BINARIES[name]} is not installed"
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "server" not in metafunc.fixturenames:
        return
    params = []
    for name in SERVERS:
        reason = None if name == "parlour" else _peer_skip_reason(name)
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        params.append(pytest.param(name, marks=marks, id=name))
    metafunc.parametrize("server", params, indirect=True)


@pytest.fixture
def server(request: pytest.FixtureRequest) -> ServerInfo:
    return request.getfixturevalue(f"_conformance_{request.param}")


# --- Parlour: the real server in its own thread and event loop, one per session ---
class _ParlourThread:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="parlour-conformance", daemon=True)
        self.server: Any = None

    def start(self) -> int:
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(60)

    async def _start(self) -> int:
        from appliance.app import Parlour
        from appliance.config.model import HostConfig, ModulesConfig
        from appliance.modules.contact_addresses import ContactAddressesOptions
        from appliance.modules.register import RegisterOptions
        from appliance.xmpp.jid import JID
        from tests.integration.harness import make_config

        cfg = make_config(self.state_dir)
        modules = ModulesConfig().with_options(
            RegisterOptions(policy="loopback", max_per_ip_per_hour=1_000_000),
            # the same XEP-0157 addresses as the peers' profiles in ./peers
            ContactAddressesOptions(abuse=(f"mailto:abuse@{DOMAIN}",), admin=(f"xmpp:admin@{DOMAIN}",)),
        )
        cfg = replace(
            cfg,
            hosts=(HostConfig(name=DOMAIN, modules=modules),),
            c2s=replace(cfg.c2s, allow_plaintext_on_loopback=True, direct_tls_port=0),
            limits=replace(cfg.limits, max_connections_per_ip=10_000, auth_failures_per_ip=1_000_000,
                           auth_failures_per_account=1_000_000),
            http=replace(cfg.http, enabled=False),
        )
        self.server = Parlour(cfg)
        await self.server.start()
        for user in USERS:
            await self.server.accounts.create(JID.parse(f"{user}@{DOMAIN}"), PASSWORD)
        return self.server.ports["c2s"]

    def stop(self) -> None:
        if self.server is not None:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="session")
def _conformance_parlour(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    runner = _ParlourThread(tmp_path_factory.mktemp("conformance-parlour"))
    port = runner.start()
    try:
        yield ServerInfo("parlour", "127.0.0.1", port)
    finally:
        runner.stop()


# --- the peers: started by ./peers/start-<name>.sh once per session, stopped by PID file ---
def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def _exclusive(name: str, wait: float = 900.0) -> Iterator[None]:
    """One test session at a time uses a peer (several engineers share this machine): a file lock."""
    with open(f"/tmp/conf-{name}.lock", "w") as lock:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{name}: another test session held the peer for {wait:.0f} s")
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _peer(name: str) -> Iterator[ServerInfo]:
    with _exclusive(name):
        yield from _started_peer(name)


def _started_peer(name: str) -> Iterator[ServerInfo]:
    port = PEER_PORTS[name]
    env = dict(os.environ, DOMAIN=DOMAIN, PASSWORD=PASSWORD, USERS=" ".join(USERS))
    # a run that was interrupted may have left our peer running: stop it (by its PID file only)
    subprocess.run([str(PEERS_DIR / f"stop-{name}.sh")], env=env, capture_output=True, timeout=90)
    if _port_open(port):
        pytest.fail(f"{name}: port {port} is already in use by another program")
    start = subprocess.run([str(PEERS_DIR / f"start-{name}.sh")], env=env, capture_output=True, text=True,
                           timeout=180)
    if start.returncode != 0:
        pytest.fail(f"{name} did not start:\n{start.stdout}\n{start.stderr}")
    try:
        yield ServerInfo(name, "127.0.0.1", port)
    finally:
        subprocess.run([str(PEERS_DIR / f"stop-{name}.sh")], env=env, capture_output=True, timeout=90)


@pytest.fixture(scope="session")
def _conformance_ejabberd() -> Iterator[ServerInfo]:
    assert shutil.which("erl"), "ejabberd needs erl to create the accounts"
    yield from _peer("ejabberd")


@pytest.fixture(scope="session")
def _conformance_prosody() -> Iterator[ServerInfo]:
    yield from _peer("prosody")
