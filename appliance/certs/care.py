"""Certificate care for a running server: ACME, the port-80 challenge listener, renewal, warnings.

``appliance/app`` builds one ``CertificateCare`` after the certificate store and starts it once the
listeners are open; everything ACME-specific stays behind this one object. The composition root hands
in the port-80 listener (``challenge_listener``, certs/acme/http01.py); without one, none is opened.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from lxml import etree

from appliance.certs.acme.challenges import ChallengeResponder
from appliance.certs.acme.manager import AcmeManager
from appliance.certs.acme.renewal import RenewalScheduler, warn_before
from appliance.certs.acme.request import take_request
from appliance.certs.acme.state import AcmeState, AcmeStatus
from appliance.certs.store import CertificateError, CertificateInfo, CertificateStore
from appliance.certs.watch import WATCH_INTERVAL, FileWatch
from appliance.config.model import Config

__all__ = ["CertificateCare", "CertificateView", "admin_notifier", "certificate_files", "imported_dir",
           "local_ca_subject"]

log = logging.getLogger(__name__)

Notify = Callable[[str], Awaitable[None]]


class ChallengeListenerLike(Protocol):
    """A plain-HTTP listener answering HTTP-01 challenges (certs.acme.http01.ChallengeListener)."""

    async def start(self) -> int | None: ...

    async def stop(self) -> None: ...


ListenerFactory = Callable[..., ChallengeListenerLike]

Kind = Literal["acme", "imported", "local-ca", "self-signed"]


@dataclass(frozen=True, slots=True)
class CertificateView:
    """One served certificate as the console shows it: where it comes from and how long it lasts."""

    info: CertificateInfo
    kind: Kind
    days_left: int
    expiring: bool  # less than warn_before() left: 14 days, or a sixth of a short lifetime


class CertificateCare:
    """The ACME side of one server; with ACME off it still warns about expiring certificates."""

    def __init__(self, config: Config, store: CertificateStore, *,
                 challenge_listener: ListenerFactory | None = None) -> None:
        self.config = config
        self.store = store
        acme = config.acme
        self.responder: ChallengeResponder | None = None
        self.manager: AcmeManager | None = None
        self.scheduler: RenewalScheduler | None = None
        self._listener_factory = challenge_listener
        self._listener: ChallengeListenerLike | None = None
        self._listening = False  # whether the port-80 listener is bound (it may be busy at start)
        self._acme_state = AcmeState(config.server.state_dir)
        store.default_name = config.hosts[0].name if config.hosts else None
        if acme.enabled:
            self.responder = ChallengeResponder(webroot=acme.webroot, set_tls_context=store.set_challenge_context)
            self.manager = AcmeManager(config, store, self.responder, tls_ports=_tls_ports(config, {}))
        self._sync_files()  # before listeners open: the first clients already get imported and ACME ones
        self._watch = FileWatch(self._watched_files, (imported_dir(config), self._acme_state.dir))

    async def start(self, ports: Mapping[str, int], *, notify: Notify, spawn: Callable[..., Any]) -> None:
        """Open the port-80 listener if needed and start the maintenance task."""
        acme = self.config.acme
        if self.manager is not None:
            self.manager.preflight = dataclasses.replace(self.manager.preflight,
                                                         tls_ports=_tls_ports(self.config, ports))
        if (self.responder is not None and acme.challenge == "http-01" and acme.webroot is None
                and self._listener_factory is not None):
            http = self.config.http
            https_port = ports.get("https") if http.enabled and http.https else None
            self._listener = self._listener_factory(
                self.responder, interfaces=http.interfaces or self.config.c2s.interfaces, port=acme.http_port,
                https_port=https_port,
            )
            self._listening = await self._listener.start() is not None
        self.scheduler = RenewalScheduler(self.store, self.manager, notify=notify, prepare=self._ensure_listening)
        spawn(self.scheduler.run(), "certificates")
        spawn(self._watch_files(), "certificate-files")

    def sync(self) -> None:
        """Serve what is on disk now (imports added or removed, an ACME certificate another process
        wrote, changed files) and let the renewal task look again (the CLI may have written a status)."""
        self._sync_files()
        if self.scheduler is not None:
            self.scheduler.load_status()
            self.scheduler.wake()

    def _sync_files(self) -> None:
        wanted = self._managed_files()
        served = self.store.chains()
        for chain, key in wanted:
            if chain not in served:
                try:
                    self.store.add(chain, key)
                except CertificateError as exc:
                    log.warning("Certificate not used: %s", exc)
        keep = {chain for chain, _ in wanted}
        managed = (imported_dir(self.config), self._acme_state.dir)
        for chain in served:
            if chain.parent in managed and chain not in keep:
                self.store.remove(chain)
        self.store.reload()

    def _managed_files(self) -> list[tuple[Path, Path]]:
        """Imported certificates, then the ACME one (with ACME on) and the one kept for names it lacks."""
        files = imported_files(self.config)
        if self.manager is not None:
            files += self._acme_state.served_files()
        return files

    def _watched_files(self) -> list[Path]:
        files = [path for pair in self._managed_files() for path in pair]
        if self.config.tls.certificate and self.config.tls.private_key:
            files += [self.config.tls.certificate, self.config.tls.private_key]
        return [*files, self._acme_state.chain, self._acme_state.status_file]

    async def _watch_files(self) -> None:
        """Pick up files changed by others and renewal requests of `parlour cert renew`, every few seconds."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            try:
                if self._watch.changed():
                    self.sync()
                request = take_request(self._acme_state) if self.manager is not None else None
                if request is not None:
                    log.info("Renewal asked for by `parlour cert renew`%s", " --force" if request.force else "")
                    await self.renew_now(by="parlour cert renew (through the running server)", request=request.id)
            except Exception:
                log.exception("Looking at the certificate files failed")

    def certificates(self, now: dt.datetime | None = None) -> list[CertificateView]:
        """Every certificate the store serves, with its kind and the days it has left."""
        now = now or dt.datetime.now(dt.UTC)
        acme_chain = AcmeState(self.config.server.state_dir).chain
        local_ca = local_ca_subject(self.store.certs_dir / "ca.pem")
        out = []
        for info in self.store.info():
            kind: Kind
            if info.chain == acme_chain:
                kind = "acme"
            elif local_ca is not None and info.issuer == local_ca:
                kind = "local-ca"
            elif info.subject == info.issuer:
                kind = "self-signed"
            else:
                kind = "imported"
            left = info.not_after - now
            out.append(CertificateView(info, kind, left.days, left < warn_before(info)))
        return out

    def served_for(self, name: str) -> CertificateView | None:
        """The certificate a client asking for ``name`` gets now, as the console shows it."""
        info = self.store.info_for(name)
        return next((v for v in self.certificates() if v.info == info), None)

    def summary(self, name: str) -> str:
        """One line on the certificate served for ``name`` (the start-up banner): where it comes from."""
        view = self.served_for(name)
        if view is None:
            return "none yet"
        info = view.info
        until = f"valid until {info.not_after:%Y-%m-%d %H:%M} UTC"
        if view.kind == "acme":
            issuer = info.issuer.partition("CN=")[2].partition(",")[0] or info.issuer
            return f"from {issuer} over ACME, {until}"
        if view.kind == "imported":
            return f"imported ({info.chain}), {until}"
        if view.kind == "self-signed":
            return f"self-signed ({info.chain}); clients must accept it"
        line = f"self-signed by a local CA; trust {self.store.certs_dir / 'ca.pem'} or accept it in the client"
        if self.manager is not None:
            line += " (ACME is on: `parlour cert status` shows how getting a certificate goes)"
        return line

    def acme_status(self) -> AcmeStatus | None:
        """The outcome of the last ACME attempt (None with ACME off or before the first attempt)."""
        return self.manager.state.load_status() if self.manager is not None else None

    async def renew_now(self, by: str = "console", *, request: str = "") -> AcmeStatus | None:
        """Order a certificate now, the way ``parlour cert renew --force`` does (``AcmeManager.obtain``),
        through the maintenance task so backoff, status file and warnings stay in one place.

        Returns the saved outcome; None when ACME is off.
        """
        if self.manager is None:
            return None
        if self.scheduler is None:  # not started (yet): the same task object, without its timer
            self.scheduler = RenewalScheduler(self.store, self.manager, prepare=self._ensure_listening)
        await self.scheduler.renew(by=by, request=request)
        return self.manager.state.load_status()

    async def _ensure_listening(self) -> None:
        """Before an attempt: bind the challenge port if it was busy or not allowed at start (another
        program held it, or the capability was granted since); the attempt explains it if it still fails."""
        if self._listener is None or self._listening:
            return
        await self._listener.stop()
        self._listening = await self._listener.start() is not None
        if self._listening:
            log.info("ACME: the challenge port is free now and Parlour listens on it")

    async def stop(self) -> None:
        self._listening = False
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None


def imported_dir(config: Config) -> Path:
    """Where ``parlour cert import`` puts certificates: ``<state_dir>/certs/imported``."""
    return config.server.state_dir / "certs" / "imported"


def imported_files(config: Config) -> list[tuple[Path, Path]]:
    """(chain, key) pairs of imported certificates, by file name."""
    folder = imported_dir(config)
    return [(p, p.with_suffix(".key")) for p in sorted(folder.glob("*.pem")) if p.with_suffix(".key").exists()]


def certificate_files(config: Config) -> list[tuple[Path, Path]]:
    """Every certificate this installation serves, in the server's order (configured, imported, ACME, local)."""
    files: list[tuple[Path, Path]] = []
    if config.tls.certificate and config.tls.private_key:
        files.append((config.tls.certificate, config.tls.private_key))
    files.extend(imported_files(config))
    files.extend(AcmeState(config.server.state_dir).served_files())
    certs = config.server.state_dir / "certs"
    for chain in sorted(certs.glob("*.pem")):
        if chain.name != "ca.pem" and chain.with_suffix(".key").exists():
            files.append((chain, chain.with_suffix(".key")))
    return files


def local_ca_subject(path: Path) -> str | None:
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(path.read_bytes()).subject.rfc4514_string()
    except (OSError, ValueError):
        return None


def _tls_ports(config: Config, ports: Mapping[str, int]) -> tuple[int, ...]:
    found = [ports.get("https", config.http.tls_port if config.http.enabled and config.http.https else 0),
             ports.get("c2s_direct_tls", config.c2s.direct_tls_port)]
    return tuple(p for p in found if p)


def admin_notifier(config: Config, route: Callable[..., Awaitable[None]]) -> Notify:
    """Send a chat message from the first host to every admin in ``server.admins``."""

    async def notify(text: str) -> None:
        if not config.server.admins or not config.hosts:
            return
        for admin in config.server.admins:
            message = etree.Element("{jabber:client}message", nsmap={None: "jabber:client"},
                                    attrib={"from": config.hosts[0].name, "to": admin, "type": "chat"})
            etree.SubElement(message, "{jabber:client}body").text = text
            await route(message, origin=None)

    return notify
