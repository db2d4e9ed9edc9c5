"""The composition root: one Parlour server built from a Config, every part wired by constructor arguments.

Storage is opened here once; the certificate store, the XMPP core, the client listeners, the web server
and certificate care are built from it and from each other. Nothing below this package imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

from appliance import __version__
from appliance.app.calls import CallRelay
from appliance.app.config_watch import CONFIG_WATCH_INTERVAL, ConfigWatch
from appliance.app.control import ControlEndpoint
from appliance.app.federation import FederationService
from appliance.app.listeners import ClientListeners
from appliance.app.services import running_services
from appliance.app.storage import Storage
from appliance.catalog import BUILTIN
from appliance.certs.acme.http01 import ChallengeListener
from appliance.certs.care import CertificateCare, admin_notifier
from appliance.certs.names import hosted_names
from appliance.certs.ocsp import OcspFetcher
from appliance.certs.stapling import StaplingTls
from appliance.certs.store import CertificateStore
from appliance.config.model import Config
from appliance.core.accounts import AccountService
from appliance.core.api import AccountDesk, BuiltinTurn, Directory, Host, InvitationDesk
from appliance.core.s2s import Federation
from appliance.core.server import SWEEP_INTERVAL, XmppCore
from appliance.core.sessions import SessionDirectory
from appliance.core.stores import Stores
from appliance.directory.ldap import LdapDirectory, describe
from appliance.net.openssl_tls import Tls
from appliance.platform.updates import REFRESH_INTERVAL, UpdateCheck
from appliance.services import Services
from appliance.services.activity import SAMPLE_INTERVAL as ACTIVITY_SAMPLE_INTERVAL
from appliance.services.scheduled_backups import BackupSchedule
from appliance.util import logbuffer
from appliance.util.fdlimit import DescriptorWatch
from appliance.util.tasks import TaskSupervisor
from appliance.web.server import WebServer

if TYPE_CHECKING:
    from appliance.app.cluster import ClusterNode
    from appliance.services.cluster import NodeReader

log = logging.getLogger(__name__)


def load_certificates(config: Config) -> tuple[CertificateStore, CertificateCare]:
    """The certificate store (configured files, else a self-signed one) and its ACME/renewal care."""
    store = CertificateStore(config.server.state_dir)
    tls = config.tls
    if tls.certificate and tls.private_key:
        store.add(tls.certificate, tls.private_key)
    else:
        store.ensure_self_signed(hosted_names(config))
    return store, CertificateCare(config, store, challenge_listener=ChallengeListener)


class Parlour:
    """One Parlour server process: `await start()`, then `await stop()`.

    `storage` is an already open database (setup mode hands over the one the wizard used); without
    it, `start()` opens `<state_dir>/parlour.db` and `stop()` closes it.
    """

    def __init__(self, config: Config, *, sweep_interval: float = SWEEP_INTERVAL,
                 storage: Storage | None = None, updates: UpdateCheck | None = None,
                 control_over_tcp: bool = False) -> None:
        self._config = config
        # The control endpoint on a loopback port with a token even where Unix sockets exist (tests).
        self.control_over_tcp = control_over_tcp
        # A newer Parlour package, for the console (None: the .deb's own build asks apt, others not).
        self.updates = updates if updates is not None else UpdateCheck.for_this_install()
        self.sweep_interval = sweep_interval
        self.storage = storage
        self.tasks = TaskSupervisor()
        self.ports: dict[str, int] = {}
        self.core: XmppCore | None = None
        self.accounts: AccountService | None = None
        self.certs: CertificateStore | None = None
        self.cert_care: CertificateCare | None = None
        self.ocsp: OcspFetcher | None = None
        self.stapling: StaplingTls | None = None
        self.listeners: ClientListeners | None = None
        self.federation: FederationService | None = None  # with [s2s] enabled
        self.cluster: ClusterNode | None = None  # with [cluster] enabled
        self.web: WebServer | None = None
        self.calls: CallRelay | None = None  # with [turn] enabled
        self.control: ControlEndpoint | None = None  # answers `parlour federation status`
        self.services: Services | None = None  # what the console, the API and ad-hoc commands call
        self.log_buffer: logbuffer.RingBufferHandler | None = None
        self.descriptors = DescriptorWatch()  # one warning when connections use up the open-file limit
        self.directory: LdapDirectory | None = None  # with [ldap] enabled

    # The running configuration is the core's (reload swaps it there).
    @property
    def config(self) -> Config:
        return self.core.config if self.core is not None else self._config

    async def start(self) -> None:
        config = self._config
        self.log_buffer = logbuffer.install()
        config.server.state_dir.mkdir(parents=True, exist_ok=True)
        if self.storage is None:
            self.storage = await Storage.open(config.server.state_dir, config.storage)
        stores = self.storage.stores
        if config.ldap.enabled:
            self.directory = LdapDirectory(config.ldap)
        self.accounts = AccountService(stores.accounts, iterations=config.limits.scram_iterations,
                                       directory=self.directory)
        self.certs, self.cert_care = load_certificates(config)
        self.ocsp = OcspFetcher(config.server.state_dir, self.certs.info,
                                enabled=lambda: self.config.tls.ocsp_stapling)
        self.stapling = StaplingTls(self.certs, self.ocsp)
        core = self.core = XmppCore(config, modules=BUILTIN, stores=stores, accounts=self.accounts,
                                    tasks=self.tasks, sweep_interval=self.sweep_interval)
        # The services exist before the modules start: ad-hoc admin commands reach accounts through them.
        self.services = running_services(core, accounts=self.accounts, database_size=self.storage.db.size,
                                         reload=self.reload, certs=self.certs,
                                         cert_care=self.cert_care, log_buffer=self.log_buffer,
                                         directory=self.directory, federation=self._live_federation,
                                         cluster=self._node_reader,
                                         updates=self.updates, ocsp=self.ocsp)
        core.publish(AccountDesk, self.services.accounts)
        if config.turn.enabled:  # before the modules start: XEP-0215 announces it with its real ports
            self.calls = CallRelay(config, self._turn_tls_context)
            self.ports.update(await self.calls.start())
            if self.calls.running:
                core.publish(BuiltinTurn, self.calls.announced)
        if self.directory is not None:
            core.publish(Directory, self.directory)
        self.control = ControlEndpoint(config.server.state_dir, {
            "federation status": self._federation_status,
        }, tcp=self.control_over_tcp)
        await self.control.start()
        core.publish(InvitationDesk, self.services.invitations)
        await self.services.invitations.adopt(await self.services.tokens.tokens.take_invitations())
        await core.start()
        if config.cluster.enabled:  # before the listeners: the registry is in place for the first login
            from appliance.app.cluster import join_cluster  # redis-py is loaded by cluster nodes only
            from appliance.app.cluster_rooms import cluster_rooms

            self.cluster = join_cluster(config, core)
            await self.cluster.start()
            cluster_rooms(self.cluster, core)  # each chat room is run by the node holding its lease
        self.listeners = ClientListeners(config, core.c2s, self.tls_context, direct_tls=self._direct_tls,
                                         descriptors=self.descriptors, components=core.components)
        self.ports.update(await self.listeners.open())
        await self._follow_federation(starting=True)
        if config.http.enabled:
            self.web = WebServer(config=config, services=core.c2s, tls_context=self._https_context,
                                 admin=self.services, acme=self.cert_care.responder)
            self.ports.update(await self.web.start())
        await self.cert_care.start(self.ports, notify=admin_notifier(config, core.router.route),
                                   spawn=self.tasks.spawn)
        self.tasks.spawn(self.ocsp.run(), "ocsp")  # in the background: stapling starts when a response comes
        self.services.activity.load()
        self.tasks.every(ACTIVITY_SAMPLE_INTERVAL, self.services.activity.sample_periodically, "activity")
        if self.directory is not None:  # its state for the console and one log line on what works
            self.tasks.spawn(self._check_directory(self.directory), "directory-check")
        # Always running: it reads [backup] at each turn, so enabling it by a reload takes effect.
        self.tasks.spawn(BackupSchedule(lambda: self.config).run_forever(), "daily-backup")
        if self.updates is not None:  # in the background: pages only read the cached answer
            self.tasks.spawn(self.updates.refresh(), "update-check")
            self.tasks.every(REFRESH_INTERVAL, self.updates.refresh, "update-check-every")
        if config.source is not None:  # a development run has no file to watch
            self.tasks.every(CONFIG_WATCH_INTERVAL, ConfigWatch(config.source, self.reload).check, "config-watch")
        log.info("Parlour %s serving %s", __version__, ", ".join(core.hosts))

    @staticmethod
    async def _check_directory(directory: LdapDirectory) -> None:
        result = await directory.check()
        if result.ok:
            log.info("company directory: %s", describe(result))
        else:
            log.warning("company directory: %s", describe(result))

    def _federation_status(self) -> dict[str, object]:
        """What `parlour federation status` shows: the switch, the live connections, the totals."""
        assert self.services is not None
        desk = self.services.federation
        return {"enabled": self.config.federation.enabled, "links": [link.as_json() for link in desk.links()],
                "counters": desk.counters()}

    def _live_federation(self) -> Federation | None:
        return self.federation.federation if self.federation is not None else None

    async def _follow_federation(self, *, starting: bool = False) -> None:
        """Start the s2s side when [federation] enabled is on and stop it when off, at start and on
        every reload: switching federation needs no restart. Stopping closes every s2s stream politely
        and returns what still waited for a remote server to its senders."""
        assert self.core is not None and self.certs is not None
        wanted = self.core.config.federation.enabled
        if wanted and self.federation is None:
            secret = await self.cluster.shared_secret("dialback") if self.cluster is not None else None
            service = FederationService(self.core.config, self.core, self.certs, self.tasks, secret=secret)
            try:
                self.ports.update(await service.start())
            except OSError as exc:
                await service.stop()
                if starting:
                    raise
                log.error("federation switched on, but its listeners could not open: %s", exc)
                return
            self.federation = service
        elif not wanted and self.federation is not None:
            service, self.federation = self.federation, None
            await service.stop()
            for name in ("s2s", "s2s_direct_tls"):
                self.ports.pop(name, None)

    def _node_reader(self) -> NodeReader | None:
        if self.cluster is None:
            return None
        from appliance.app.cluster import node_reader

        return node_reader(self.cluster)

    def tls_context(self) -> Tls | None:
        """TLS for STARTTLS: pyOpenSSL while an OCSP response is stapled, else ssl (certs/stapling.py)."""
        return self.stapling.choose() if self.stapling is not None else None

    def _direct_tls(self) -> Tls | None:
        return self.stapling.choose(alpn=["xmpp-client"]) if self.stapling is not None else None  # XEP-0368

    def _turn_tls_context(self) -> ssl.SSLContext | None:
        return self.certs.server_context() if self.certs is not None else None

    def _https_context(self) -> Tls | None:
        return self.stapling.choose(alpn=["http/1.1"]) if self.stapling is not None else None

    # -- what tests and tools see of the core ------------------------------------------------------

    @property
    def stores(self) -> Stores | None:
        return self.storage.stores if self.storage is not None else None

    @property
    def hosts(self) -> dict[str, Host]:
        assert self.core is not None
        return self.core.hosts

    @property
    def sessions(self) -> SessionDirectory:
        assert self.core is not None
        return self.core.sessions

    async def reload(self, new: Config) -> list[str]:
        """Apply a validated config to the core (see XmppCore.reload) and the web server."""
        assert self.core is not None
        restart = await self.core.reload(new)
        if self.ocsp is not None:
            self.ocsp.wake()  # stapling switched on: fetch now, not at the next round
        await self._follow_federation()
        if self.web is not None:
            self.web.config = self.core.config
        log.info("configuration reloaded%s", f"; restart required for {', '.join(restart)}" if restart else "")
        return restart

    async def stop(self) -> None:
        if self.control is not None:
            await self.control.stop()
        if self.listeners is not None:
            self.listeners.close()
        if self.federation is not None:
            await self.federation.stop()
        if self.core is not None:
            await self.core.close_streams()
        if self.cluster is not None:
            await self.cluster.stop()
        if self.web is not None:
            await self.web.stop()
        if self.cert_care is not None:
            await self.cert_care.stop()
        if self.calls is not None:
            await self.calls.stop()
        if self.core is not None:
            await self.core.stop()
        await self.tasks.close()
        if self.services is not None:
            self.services.activity.sample()
            self.services.activity.save()
        if self.listeners is not None:
            await self.listeners.wait_closed()
        if self.storage is not None:
            await self.storage.close()
        if self.directory is not None:
            self.directory.close()
        log.info("Parlour stopped")


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


async def serve(config: Config, *, ready: Callable[[Parlour], None] | None = None) -> None:
    """Run the server until SIGTERM or SIGINT."""
    server = Parlour(config)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(server.descriptors.exception_handler)
    await server.start()
    tune_gc_for_serving()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready(server)
    try:
        await stop.wait()
    finally:
        await server.stop()
