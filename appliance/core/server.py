"""The composition root: builds storage, hosts, modules and listeners from a Config, starts and stops them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import hashlib
import logging
import os
import signal
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance.config.model import Config
from appliance.core import c2s
from appliance.core.accounts import AccountService
from appliance.core.api import Host, ModuleContext
from appliance.core.authn import FastTokens
from appliance.core.iq import IqTable, PendingIqs
from appliance.core.router import Router
from appliance.core.sessions import SessionDirectory
from appliance.core.stores import Stores
from appliance.util.ratelimit import FailureTracker
from appliance.util.tasks import TaskSupervisor
from appliance.xmpp.errors import StreamError

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 10.0


class Server:
    """One Parlour server process: `await start()`, then `await stop()`."""

    def __init__(self, config: Config, *, sweep_interval: float = SWEEP_INTERVAL) -> None:
        self.config = config
        self.sweep_interval = sweep_interval  # tests shorten it to see timeouts quickly
        self.started_at = time.time()
        self.tasks = TaskSupervisor()
        self.sessions = SessionDirectory()
        self.iq_table = IqTable()
        self.pending = PendingIqs()
        self.hosts: dict[str, Host] = {h.name: Host(h.name, h) for h in config.hosts}
        self.contexts: list[ModuleContext] = []
        self.listeners: list[asyncio.Server] = []
        self.ports: dict[str, int] = {}
        self.stats: dict[str, int] = {}
        self.db: Any = None
        self.stores: Stores | None = None
        self.accounts: AccountService | None = None
        self.certs: Any = None
        self.c2s: c2s.C2SServices | None = None
        self.web: Any = None  # [http] appliance.web.server.WebServer
        self.cert_care: Any = None  # [acme] appliance.certs.care.CertificateCare
        self.router: Router | None = None
        self.log_buffer: Any = None  # [console] appliance.util.logbuffer.RingBufferHandler

    # -- start ----------------------------------------------------------------------------------

    async def start(self) -> None:
        from appliance.util import logbuffer

        self.log_buffer = logbuffer.install()
        state_dir = self.config.server.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        await self._open_storage(state_dir)
        self._load_certificates(state_dir)
        assert self.stores is not None and self.accounts is not None
        router = Router(
            hosts=self.hosts, sessions=self.sessions, iq_table=self.iq_table, pending=self.pending,
            accounts=self.accounts,
        )
        self.router = router
        limits = self.config.limits
        self.c2s = c2s.C2SServices(
            config=self.config,
            hosts=self.hosts,
            sessions=self.sessions,
            router=router,
            accounts=self.accounts,
            pending=self.pending,
            ip_failures=FailureTracker(
                limit=limits.auth_failures_per_ip, window=limits.auth_window, block=limits.auth_block_time
            ),
            account_failures=FailureTracker(
                limit=limits.auth_failures_per_account, window=limits.auth_window, block=limits.auth_block_time
            ),
            fake_secret=_fake_secret(state_dir),
            connections=set(),
            stats=self.stats,
            fast=FastTokens(self.stores.kv),  # issue 6: FAST tokens (XEP-0484)
        )
        await self._load_modules(router)
        await self._open_listeners()
        await self._open_web()  # [http]
        await self._start_cert_care()  # [acme]
        self.tasks.every(self.sweep_interval, self._sweep, "c2s-sweep")
        log.info("Parlour %s serving %s", __version__, ", ".join(self.hosts))

    async def _open_storage(self, state_dir: Path) -> None:
        from appliance.storage.sqlite import Database
        from appliance.storage.stores.accounts import AccountStore
        from appliance.storage.stores.archive import ArchiveStore
        from appliance.storage.stores.blocklist import BlocklistStore
        from appliance.storage.stores.kv import KeyValueStore
        from appliance.storage.stores.muc import MucStore
        from appliance.storage.stores.offline import OfflineStore
        from appliance.storage.stores.pubsub import PubSubStore
        from appliance.storage.stores.roster import RosterStore
        from appliance.storage.uploads import UploadFiles

        db = self.db = await Database.open(state_dir / "parlour.db")
        self.stores = Stores(
            accounts=AccountStore(db),
            roster=RosterStore(db),
            offline=OfflineStore(db),
            kv=KeyValueStore(db),
            blocklist=BlocklistStore(db),
            muc=MucStore(db),
            pubsub=PubSubStore(db),
            archive=ArchiveStore(db),
            uploads=UploadFiles(state_dir / "uploads"),
        )
        self.accounts = AccountService(self.stores.accounts, iterations=self.config.limits.scram_iterations)

    def _load_certificates(self, state_dir: Path) -> None:
        from appliance.certs.store import CertificateStore

        self.certs = CertificateStore(state_dir)
        tls = self.config.tls
        if tls.certificate and tls.private_key:
            self.certs.add(tls.certificate, tls.private_key)
        else:
            from appliance.certs.names import hosted_names

            self.certs.ensure_self_signed(hosted_names(self.config))
        from appliance.certs.care import CertificateCare  # [acme]

        self.cert_care = CertificateCare(self.config, self.certs)

    def tls_context(self) -> ssl.SSLContext | None:
        return self.certs.current_context() if self.certs is not None else None

    async def _load_modules(self, router: Router) -> None:
        for host in self.hosts.values():
            self._setup_modules(host, router)
        for host in self.hosts.values():
            for module in host.modules:
                await module.start()

    def _setup_modules(self, host: Host, router: Router) -> None:
        from appliance.modules import BUILTIN

        assert self.stores is not None and self.accounts is not None
        disabled = set(host.config.modules.disabled)
        for module_cls in _ordered(BUILTIN):
            if module_cls.name in disabled:
                continue
            module = module_cls()
            ctx = ModuleContext(
                module, host, config=self.config, iq_table=self.iq_table, pending=self.pending,
                router=router, sessions=self.sessions, stores=self.stores, accounts=self.accounts,
                tasks=self.tasks,
            )
            module.setup(ctx)
            host.modules.append(module)
            self.contexts.append(ctx)

    # -- reload ---------------------------------------------------------------------------------

    async def reload(self, new: Config) -> list[str]:
        """Apply a validated config: module options are swapped by re-creating every host's modules,
        admins, console and logging settings take effect at once. Returns the dotted names of changed
        settings that need a restart (listeners, TLS, limits, hosts, state folder); those keep their
        old values until then."""
        old = self.config
        restart = [name for name in ("c2s", "tls", "http", "limits") if getattr(old, name) != getattr(new, name)]
        if old.server.state_dir != new.server.state_dir:
            restart.append("server.state_dir")
        if [h.name for h in old.hosts] != [h.name for h in new.hosts]:
            restart.append("hosts")
        live = dataclasses.replace(
            old, server=dataclasses.replace(old.server, admins=new.server.admins), console=new.console,
            logging=new.logging, source=new.source or old.source,
            hosts=tuple(new.host(h.name) or h for h in old.hosts),
        )
        self.config = live
        if self.c2s is not None:
            self.c2s.config = live
        if old.logging != new.logging:
            from appliance.util.logging import apply_level

            apply_level(new.logging)
        if self.router is not None and [h.modules for h in old.hosts] != [h.modules for h in live.hosts]:
            await self._reload_modules(live)
        if self.web is not None:
            self.web.config = live
        log.info("configuration reloaded%s", f"; restart required for {', '.join(restart)}" if restart else "")
        return restart

    async def _stop_modules(self) -> None:
        """Stop every module (newest first) and undo everything they registered."""
        for host in self.hosts.values():
            for module in reversed(host.modules):
                try:
                    await module.stop()
                except Exception:
                    log.exception("module %s failed to stop", module.name)
        for ctx in reversed(self.contexts):
            ctx.undo()

    async def _reload_modules(self, config: Config) -> None:
        assert self.router is not None
        await self._stop_modules()
        self.contexts.clear()
        for host in self.hosts.values():
            host.modules.clear()
            host.config = config.host(host.name) or host.config
            self._setup_modules(host, self.router)
        for host in self.hosts.values():
            for module in host.modules:
                await module.start()

    async def _open_listeners(self) -> None:
        from appliance.net.tcp import ConnectionLimits, XmppTcpProtocol

        cfg = self.config.c2s
        limits = ConnectionLimits(
            max_per_ip=self.config.limits.max_connections_per_ip, max_total=self.config.limits.max_connections
        )
        services = self.c2s
        assert services is not None
        loop = asyncio.get_running_loop()
        wanted = [("c2s", cfg.port, False)]
        if cfg.direct_tls_port:
            wanted.append(("c2s_direct_tls", cfg.direct_tls_port, True))
        for name, port, direct in wanted:
            context = self.tls_context() if direct else None

            def factory(direct: bool = direct) -> XmppTcpProtocol:
                return XmppTcpProtocol(
                    services, limits, self.tls_context, direct_tls=direct, session_factory=c2s.ClientSession
                )

            bound = port
            for interface in cfg.interfaces:
                try:
                    server = await loop.create_server(
                        factory, host=interface, port=bound, ssl=context, backlog=4096, reuse_address=True,
                        ssl_handshake_timeout=30 if context else None,
                    )
                except OSError as exc:
                    if interface == "::" and len(cfg.interfaces) > 1:
                        log.info("IPv6 listener on %s unavailable: %s", interface, exc)
                        continue
                    raise
                self.listeners.append(server)
                bound = server.sockets[0].getsockname()[1]
            self.ports[name] = bound
            log.info("%s listening on %s port %d", name, ", ".join(cfg.interfaces), bound)

    # -- [http] web listener (BOSH, WebSocket, host-meta) ----------------------------------------
    async def _open_web(self) -> None:
        if not self.config.http.enabled:
            return
        from appliance.web.server import WebServer

        assert self.c2s is not None
        from appliance.web.admin.service import AdminService

        self.web = WebServer(config=self.config, services=self.c2s, tls_context=self._https_context,
                             admin=AdminService(self),
                             acme=self.cert_care.responder if self.cert_care is not None else None)
        self.ports.update(await self.web.start())

    async def _start_cert_care(self) -> None:  # [acme]
        from appliance.certs.care import admin_notifier

        assert self.c2s is not None
        await self.cert_care.start(self.ports, notify=admin_notifier(self.config, self.c2s.router.route),
                                   spawn=self.tasks.spawn)

    def _https_context(self) -> ssl.SSLContext | None:
        return self.certs.server_context(alpn=["http/1.1"]) if self.certs is not None else None
    # -- end [http] -------------------------------------------------------------------------------

    async def _sweep(self) -> None:
        if self.c2s is not None:
            c2s.sweep(self.c2s, time.monotonic())
            now = time.monotonic()
            self.c2s.ip_failures.prune(now)
            self.c2s.account_failures.prune(now)

    # -- stop -----------------------------------------------------------------------------------

    async def stop(self) -> None:
        for listener in self.listeners:
            listener.close()
        if self.c2s is not None:
            for session in list(self.c2s.connections):
                session.stream_error(StreamError.system_shutdown("The server is shutting down"))
        await asyncio.sleep(0.05)
        if self.c2s is not None:  # unacknowledged messages of those sessions go offline first (XEP-0198)
            await c2s.settle(self.c2s)
        if self.web is not None:  # [http]
            await self.web.stop()
        if self.cert_care is not None:  # [acme]
            await self.cert_care.stop()
        await self._stop_modules()
        await self.tasks.close()
        for listener in self.listeners:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.wait_closed(), 2)
        if self.db is not None:
            await self.db.close()
        log.info("Parlour stopped")


def _ordered(modules: tuple[type, ...]) -> list[type]:
    """Module classes ordered so that each comes after the modules it depends on."""
    by_name = {m.name: m for m in modules}
    done: list[type] = []
    seen: set[str] = set()

    def visit(module: type) -> None:
        if module.name in seen:
            return
        seen.add(module.name)
        for dep in module.depends:
            if dep in by_name:
                visit(by_name[dep])
        done.append(module)

    for module in modules:
        visit(module)
    return done


def _fake_secret(state_dir: Path) -> bytes:
    """A per-installation secret that makes SCRAM salts of unknown users stable but unguessable."""
    path = state_dir / "secret.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))
    return hashlib.sha256(path.read_bytes()).digest()


# Young-generation threshold of the cyclic GC for a running server (CPython's default is 700): a login
# allocates a few thousand objects, nearly all freed by reference counting, so collecting every 700 of
# them mostly walks live sessions for nothing.
GC_YOUNG_THRESHOLD = 10_000


def tune_gc_for_serving() -> None:
    """Move everything that exists after start-up (modules, config, caches: alive for the process's life)
    out of the collector's sight with ``gc.freeze()``, and collect the young generation less often.
    Measured with benchmarks/profile_login.py at 1,000 concurrent logins: GC time per login from
    0.11 to 0.03 ms. For the server process only: tests that start many servers keep the defaults."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


async def serve(config: Config, *, ready: Callable[[Server], None] | None = None) -> None:
    """Run the server until SIGTERM or SIGINT."""
    server = Server(config)
    await server.start()
    tune_gc_for_serving()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready(server)
    try:
        await stop.wait()
    finally:
        await server.stop()
