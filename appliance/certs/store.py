"""The certificate store: every certificate the server presents, chosen per connection by SNI.

Each certificate gets its SSLContexts built once, when its files are (re)loaded; connections reuse
them. Every context carries the same SNI callback, which looks at the store's *current* certificate
set, so a listener holding an older context still hands new connections the newest certificate, while
established connections keep the context (and certificate) they started with.

Order: configured/imported certificates in the order added, then the local self-signed one. An exact
name match beats a wildcard one, and a certificate still valid beats an expired one. Without SNI (or
when no name matches) the default is the first valid certificate covering ``default_name`` (the main
host), so an imported certificate for some other name never becomes what clients without SNI get.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import ssl
import tempfile
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from appliance.certs import selfsigned
from appliance.net.tls import make_server_context

__all__ = ["CertificateError", "CertificateInfo", "CertificateStore"]

log = logging.getLogger(__name__)

_Alpn = tuple[str, ...]


class CertificateError(ValueError):
    """A certificate or key file cannot be used; the message says which file and why."""


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What a status page shows about one certificate."""

    names: tuple[str, ...]
    subject: str
    issuer: str
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    self_signed: bool  # issued by our local CA or by itself: not trusted by clients out of the box
    fingerprint_sha256: str
    chain: Path
    key: Path


@dataclass(frozen=True, slots=True)
class _Source:
    chain: Path
    key: Path
    local: bool  # the local-CA certificate managed by ensure_self_signed


@dataclass(eq=False, slots=True)
class _Entry:
    source: _Source
    chain_pem: bytes
    key_pem: bytes
    info: CertificateInfo
    contexts: dict[_Alpn, ssl.SSLContext] = field(default_factory=dict)


class CertificateStore:
    """Certificates under ``<state_dir>/certs`` plus configured ones, served through SNI."""

    def __init__(self, state_dir: Path) -> None:
        self._dir = state_dir / "certs"
        self._lock = threading.RLock()
        self._entries: tuple[_Entry, ...] = ()
        self._alpns: dict[_Alpn, None] = {(): None}  # every ALPN list asked for, in order
        self._alpn_of: weakref.WeakKeyDictionary[ssl.SSLContext, _Alpn] = weakref.WeakKeyDictionary()
        self._challenges: dict[str, ssl.SSLContext] = {}  # ACME TLS-ALPN-01 answers by name
        self.default_name: str | None = None  # the name served to clients without SNI (the main host)
        for stale in self._dir.glob(".load.*.pem"):  # private key copies left by a crash
            stale.unlink(missing_ok=True)

    @property
    def certs_dir(self) -> Path:
        """Where the local CA, self-signed and managed certificates live."""
        return self._dir

    def ensure_self_signed(self, names: list[str], *, loopback: bool = False) -> None:
        """Issue (or keep) the local-CA certificate for ``names`` and serve it after configured ones.

        ``loopback`` adds localhost, 127.0.0.1 and ::1. Blocking: run it in a thread from the loop.
        """
        issued = selfsigned.ensure_self_signed(self._dir, names, loopback=loopback)
        with self._lock:
            entries = [e for e in self._entries if not e.source.local]
            old = next((e for e in self._entries if e.source.local), None)
            source = _Source(issued.chain, issued.key, local=True)
            keep = old if old is not None and old.source == source else None
            self._entries = (*entries, self._load(source, keep))

    def add(self, pem_chain: Path, key: Path) -> CertificateInfo:
        """Serve a configured or imported certificate (PEM chain, leaf first, and its PEM key).

        Adding the same chain path again replaces that certificate in place. Raises
        ``CertificateError`` when the files cannot be read or do not belong together.
        """
        source = _Source(pem_chain, key, local=False)
        with self._lock:
            entry = self._load(source, None)
            entries = list(self._entries)
            at = next((i for i, e in enumerate(entries) if e.source.chain == pem_chain), None)
            if at is None:
                at = sum(1 for e in entries if not e.source.local)
                entries.insert(at, entry)
            else:
                entries[at] = entry
            self._entries = tuple(entries)
        return entry.info

    def remove(self, pem_chain: Path) -> bool:
        """Stop serving the certificate added from ``pem_chain``; whether there was one."""
        with self._lock:
            entries = tuple(e for e in self._entries if e.source.chain != pem_chain or e.source.local)
            removed, self._entries = len(entries) != len(self._entries), entries
        if removed:
            log.info("No longer serving %s", pem_chain)
        return removed

    def chains(self) -> list[Path]:
        """The chain file of every certificate served (the local one included)."""
        return [e.source.chain for e in self._entries]

    def reload(self) -> bool:
        """Re-read every certificate's files; return whether any certificate changed.

        New connections get the new certificates; established ones keep theirs. A file that became
        unreadable or invalid is logged and its previous certificate stays in service.
        """
        with self._lock:
            fresh: list[_Entry] = []
            for old in self._entries:
                try:
                    fresh.append(self._load(old.source, old))
                except CertificateError as exc:
                    log.warning("Keeping the previous certificate: %s", exc)
                    fresh.append(old)
            changed = any(new is not old for new, old in zip(fresh, self._entries, strict=True))
            self._entries = tuple(fresh)
        return changed

    def server_context(self, *, alpn: list[str] | None = None) -> ssl.SSLContext:
        """The context to give a listener or STARTTLS; built once per certificate and ALPN list.

        Its SNI callback always consults the newest certificate set, so holding on to it is safe.
        """
        key: _Alpn = tuple(alpn or ())
        with self._lock:
            if not self._entries:
                raise CertificateError("No certificate yet: call ensure_self_signed() or add() first")
            if key not in self._alpns:
                self._alpns[key] = None
            entry = _match(self._entries, None, self.default_name) or self._entries[0]
            return self._variant(entry, key)

    def current_context(self, *, alpn: list[str] | None = None) -> ssl.SSLContext:
        """The newest context for a new connection (same as ``server_context``, for per-accept use)."""
        return self.server_context(alpn=alpn)

    def set_challenge_context(self, name: str, context: ssl.SSLContext | None) -> None:
        """Answer handshakes for ``name`` with an ACME TLS-ALPN-01 context (None: stop doing so)."""
        name = name.lower().rstrip(".")
        if context is None:
            self._challenges.pop(name, None)
        else:
            self._challenges[name] = context

    def challenges_pending(self) -> bool:
        """Whether an ACME TLS-ALPN-01 challenge is being answered (only the ssl contexts answer it)."""
        return bool(self._challenges)

    def info_for(self, server_name: str | None) -> CertificateInfo | None:
        """The certificate a handshake asking for ``server_name`` gets now."""
        entry = _match(self._entries, server_name, self.default_name)
        return entry.info if entry is not None else None

    def files_for(self, server_name: str | None) -> tuple[Path, Path] | None:
        """The (chain, key) files of the certificate served for ``server_name`` (s2s presents it as a client)."""
        entry = _match(self._entries, server_name, self.default_name)
        return (entry.source.chain, entry.source.key) if entry is not None else None

    def info(self) -> list[CertificateInfo]:
        """One record per certificate, default first."""
        return [e.info for e in self._entries]

    def _load(self, source: _Source, previous: _Entry | None) -> _Entry:
        """Read a certificate's files; reuse ``previous`` when they have not changed."""
        try:
            chain_pem, key_pem = source.chain.read_bytes(), source.key.read_bytes()
        except OSError as exc:
            raise CertificateError(f"{exc.filename}: cannot read: {exc.strerror}") from exc
        if previous is not None and (chain_pem, key_pem) == (previous.chain_pem, previous.key_pem):
            return previous
        entry = _Entry(source, chain_pem, key_pem, _describe(source, chain_pem, key_pem))
        for alpn in self._alpns:
            self._variant(entry, alpn)
        log.info(
            "Loaded certificate %s for %s, valid until %s",
            source.chain,
            ", ".join(entry.info.names),
            entry.info.not_after,
        )
        if entry.info.not_after < dt.datetime.now(dt.UTC):
            log.warning("%s expired on %s; renew or replace it", source.chain, entry.info.not_after)
        return entry

    def _variant(self, entry: _Entry, alpn: _Alpn) -> ssl.SSLContext:
        """The entry's context for one ALPN list, built from the bytes read (not the files now)."""
        ctx = entry.contexts.get(alpn)
        if ctx is not None:
            return ctx
        with _private_copies(self._dir, entry.chain_pem, entry.key_pem) as (chain, key):
            try:
                ctx = make_server_context(chain, key)
            except (ssl.SSLError, ValueError) as exc:
                raise CertificateError(f"{entry.source.chain}: cannot be loaded with its key: {exc}") from exc
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        ctx.sni_callback = self._on_sni
        self._alpn_of[ctx] = alpn
        entry.contexts[alpn] = ctx
        return ctx

    def _on_sni(
        self, conn: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, ctx: ssl.SSLContext
    ) -> int | None:
        """Switch the handshake to the context of the certificate that matches ``server_name``."""
        try:
            challenge = self._challenges.get((server_name or "").lower().rstrip(".")) if self._challenges else None
            if challenge is not None:
                conn.context = challenge
                return None
            entry = _match(self._entries, server_name, self.default_name)  # swapped whole: no lock to read
            if entry is not None:
                alpn = self._alpn_of.get(ctx, ())
                target = entry.contexts.get(alpn)
                if target is None:  # an ALPN list first asked for after this certificate loaded
                    with self._lock:
                        target = self._variant(entry, alpn)
                if target is not ctx:
                    conn.context = target
        except Exception:
            log.exception("Choosing a certificate for %r failed; using the listener's", server_name)
        return None


def _match(entries: tuple[_Entry, ...], server_name: str | None, default_name: str | None = None
           ) -> _Entry | None:
    """Exact SAN match first, then a one-label wildcard, else the default; valid ones before expired."""
    if not entries:
        return None
    now = dt.datetime.now(dt.UTC)
    ranked = sorted(entries, key=lambda e: e.info.not_after <= now)  # stable: valid first, in order
    for name in (server_name, default_name):
        if not name:
            continue
        name = name.lower().rstrip(".")
        _, dot, parent = name.partition(".")
        wanted = (name, f"*.{parent}") if dot and parent else (name,)
        for candidate in wanted:
            for entry in ranked:
                if candidate in entry.info.names:
                    return entry
    return ranked[0]


def _describe(source: _Source, chain_pem: bytes, key_pem: bytes) -> CertificateInfo:
    try:
        leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    except ValueError as exc:
        raise CertificateError(f"{source.chain}: no PEM certificate: {exc}") from exc
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"{source.key}: not an unencrypted PEM private key: {exc}") from exc
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
        raise CertificateError(f"{source.key}: does not match the first certificate in {source.chain}")
    names = selfsigned.san_names(leaf) or _common_names(leaf)
    return CertificateInfo(
        names=names,
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        serial=leaf.serial_number,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        self_signed=source.local or leaf.issuer == leaf.subject,
        fingerprint_sha256=hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest(),
        chain=source.chain,
        key=source.key,
    )


def _common_names(cert: x509.Certificate) -> tuple[str, ...]:
    """Legacy subject CNs, for certificates without subjectAltName."""
    attributes = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return tuple(str(a.value).lower() for a in attributes)


@contextlib.contextmanager
def _private_copies(directory: Path, chain_pem: bytes, key_pem: bytes) -> Iterator[tuple[Path, Path]]:
    """The exact bytes read, as 0600 temporary files that ``ssl`` can load.

    ``load_cert_chain`` only takes paths; loading copies of what was parsed guarantees that the
    context serves the certificate the store describes, even if the real files change in between.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths: list[Path] = []
    try:
        for data in (chain_pem, key_pem):
            fd, name = tempfile.mkstemp(dir=directory, prefix=".load.", suffix=".pem")
            paths.append(Path(name))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        yield paths[0], paths[1]
    finally:
        for path in paths:
            path.unlink(missing_ok=True)
