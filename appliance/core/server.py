"""The XMPP core of a server: hosts, sessions, router and modules, built from the storage it is given."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from appliance.config.model import Config
from appliance.core import c2s
from appliance.core.accounts import AccountService
from appliance.core.api import Host, Module, ModuleContext
from appliance.core.auth_throttle import AuthThrottle
from appliance.core.authn import FastTokens
from appliance.core.changes import SharedChanges
from appliance.core.component import ComponentHub
from appliance.core.federation_policy import FederationPolicy
from appliance.core.iq import IqTable, PendingIqs
from appliance.core.router import Router
from appliance.core.sessions import SessionDirectory
from appliance.core.stores import Stores
from appliance.util import memory
from appliance.util.files import secret_file
from appliance.util.logging import apply_level
from appliance.util.tasks import TaskSupervisor
from appliance.xmpp.errors import StreamError

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 10.0

Unwire = Callable[[], Awaitable[None]]
ModuleWiring = Callable[[], Unwire]
"""Attaches something the composition root built to what the modules made (a cluster's room leases in
front of the chat service, a listener on the caps module); returns how to detach it again."""


class XmppCore:
    """The XMPP core of one server: hosts, sessions, router, IQ tables, modules and the c2s services.

    It is handed its storage and account service (appliance/app opens them); listeners, web and
    certificates live outside and reach the core through `c2s`. `await start()`, then `await stop()`.
    """

    def __init__(self, config: Config, *, modules: tuple[type[Module], ...], stores: Stores,
                 accounts: AccountService, tasks: TaskSupervisor, sweep_interval: float = SWEEP_INTERVAL) -> None:
        self.config = config
        self.modules = modules  # the module classes every host loads unless disabled
        self.stores = stores
        self.accounts = accounts
        self.tasks = tasks
        self.sweep_interval = sweep_interval  # tests shorten it to see timeouts quickly
        self.started_at = time.time()
        self.sessions = SessionDirectory()
        self.changes = SharedChanges()  # a cluster links it to the other nodes
        self.iq_table = IqTable()
        self.pending = PendingIqs()
        self.hosts: dict[str, Host] = {h.name: Host(h.name, h) for h in config.hosts}
        self.contexts: list[ModuleContext] = []
        self._wirings: list[ModuleWiring] = []
        self._unwire: list[Unwire] = []
        self.stats: dict[str, int] = {}
        self.federation = FederationPolicy(lambda: self.config.federation)  # reads the running settings
        self.router = Router(
            hosts=self.hosts, sessions=self.sessions, iq_table=self.iq_table, pending=self.pending,
            accounts=accounts, federation=self.federation,
        )
        self.components = ComponentHub(config, router=self.router, hosts=self.hosts)  # XEP-0114
        limits = config.limits
        self.c2s = c2s.C2SServices(
            config=config,
            hosts=self.hosts,
            sessions=self.sessions,
            router=self.router,
            accounts=accounts,
            pending=self.pending,
            auth_throttle=AuthThrottle(
                per_ip=limits.auth_failures_per_ip, per_account=limits.auth_failures_per_account,
                window=limits.auth_window, max_delay=limits.auth_max_delay,
            ),
            fake_secret=_fake_secret(config.server.state_dir),
            connections=set(),
            stats=self.stats,
            fast=FastTokens(stores.kv),  # issue 6: FAST tokens (XEP-0484)
        )

    def publish(self, kind: type, service: object) -> None:
        """Offer `service` to every host's modules under `kind` (a Protocol of core/api.py), as the
        composition root's part of what modules may `require`; call it before `start`."""
        for host in self.hosts.values():
            host.services[kind] = service

    async def start(self) -> None:
        """Set up and start every host's modules, then the periodic sweep of idle streams."""
        await self._load_modules()
        self.tasks.every(self.sweep_interval, self._sweep, "c2s-sweep")
        self.tasks.every(memory.TRIM_INTERVAL, memory.give_back_periodically, "malloc-trim")

    async def _load_modules(self) -> None:
        for host in self.hosts.values():
            self._setup_modules(host)
        for host in self.hosts.values():
            for module in host.modules:
                await module.start()

    def _setup_modules(self, host: Host) -> None:
        disabled = set(host.config.modules.disabled)
        for module_cls in _ordered(self.modules):
            if module_cls.name in disabled:
                continue
            module = module_cls()
            ctx = ModuleContext(
                module, host, config=self.config, iq_table=self.iq_table, pending=self.pending,
                router=self.router, sessions=self.sessions, stores=self.stores, accounts=self.accounts,
                tasks=self.tasks, changes=self.changes,
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
        # OCSP stapling is read per connection and by the fetcher's every round (certs/ocsp.py): at once.
        tls = dataclasses.replace(old.tls, ocsp_stapling=new.tls.ocsp_stapling)
        restart = [name for name, kept in (("c2s", old.c2s), ("tls", tls), ("http", old.http), ("limits", old.limits),
                                           ("ldap", old.ldap)) if kept != getattr(new, name)]
        if (old.components.interfaces, old.components.port, bool(old.components.secrets)) != (
                new.components.interfaces, new.components.port, bool(new.components.secrets)):
            restart.append("components")
        if old.server.state_dir != new.server.state_dir:
            restart.append("server.state_dir")
        # s2s policy, resolver and timeouts apply at once (read per connection). Federation switched on or
        # off starts or stops the s2s listeners (the composition root follows the switch); while they run,
        # their addresses and ports need a restart.
        s2s = new.s2s
        if old.federation.enabled and new.federation.enabled:
            listener_keys = ("interfaces", "port", "direct_tls_port")
            restart += [f"s2s.{key}" for key in listener_keys if getattr(old.s2s, key) != getattr(new.s2s, key)]
            s2s = dataclasses.replace(new.s2s, **{key: getattr(old.s2s, key) for key in listener_keys})
        if [h.name for h in old.hosts] != [h.name for h in new.hosts]:
            restart.append("hosts")
        live = dataclasses.replace(
            old, server=dataclasses.replace(old.server, admins=new.server.admins), console=new.console,
            logging=new.logging, source=new.source or old.source,
            components=dataclasses.replace(old.components, secrets=new.components.secrets),
            federation=new.federation,
            s2s=s2s,
            tls=tls,
            hosts=tuple(new.host(h.name) or h for h in old.hosts),
        )
        self.config = live
        self.c2s.config = live
        self.components.config = live
        if old.logging != new.logging:
            apply_level(new.logging)
        if [h.modules for h in old.hosts] != [h.modules for h in live.hosts]:
            await self._reload_modules(live)
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

    def wire_modules(self, wiring: ModuleWiring) -> None:
        """Apply `wiring` to the running modules now, and again each time a reload makes them anew (after
        undoing it on the old ones first): what is attached to modules from outside survives a reload."""
        self._wirings.append(wiring)
        self._unwire.append(wiring())

    async def _reload_modules(self, config: Config) -> None:
        for unwire in reversed(self._unwire):
            try:
                await unwire()
            except Exception:
                log.exception("detaching from the modules before a reload failed")
        await self._stop_modules()
        self.contexts.clear()
        for host in self.hosts.values():
            host.modules.clear()
            host.config = config.host(host.name) or host.config
            self._setup_modules(host)
        for host in self.hosts.values():
            for module in host.modules:
                await module.start()
        self._unwire = [wiring() for wiring in self._wirings]

    async def _sweep(self) -> None:
        c2s.sweep(self.c2s, time.monotonic())
        now = time.monotonic()
        self.c2s.auth_throttle.prune(now)

    # -- stop -----------------------------------------------------------------------------------

    async def close_streams(self) -> None:
        """Tell every client the server shuts down; their unacknowledged messages go offline first."""
        for session in list(self.c2s.connections):
            session.stream_error(StreamError.system_shutdown("The server is shutting down"))
        self.components.close_all()
        await asyncio.sleep(0.05)
        await c2s.settle(self.c2s)  # XEP-0198: unacknowledged stanzas are stored before storage closes

    async def stop(self) -> None:
        """Stop and unload every module."""
        await self._stop_modules()


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
    return hashlib.sha256(secret_file(state_dir / "secret.key")).digest()
