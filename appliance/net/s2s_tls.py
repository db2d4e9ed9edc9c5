"""TLS for connections other servers make to us, with pyOpenSSL, so SASL EXTERNAL can be offered to them.

Python's `ssl` can ask a client for its certificate only by verifying it during the handshake: a peer
whose certificate does not validate (or carries only the serverAuth extended key usage, which OpenSSL
refuses for a client) would be cut off, when it should fall back to Server Dialback. Here the handshake
asks for a certificate and accepts whatever comes (`set_verify` with a callback that says yes); the
chain is then checked by Parlour itself (`verify_server`), per RFC 6125, against the domain the peer
claims: the chain with `cryptography`'s verifier (the system's or `s2s.ca_bundle`'s CAs, serverAuth
expected: a public CA's certificate has nothing else), the name with net/identity.py (DNS-ID, SRV-ID,
XmppAddr).

`TlsStream` runs pyOpenSSL over memory BIOs (net/openssl_tls.py's engine and contexts, which c2s and
HTTPS use for OCSP stapling) on the asyncio stream of the accepted socket, so the s2s driver reads and
writes it like the plain stream it replaces.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import ssl
import warnings
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)
from OpenSSL import SSL

from appliance.net.identity import names_domain
from appliance.net.openssl_tls import CHUNK, ContextCache, TlsEngine

log = logging.getLogger(__name__)


_SERVER_USAGES = {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}


def _server_auth(_policy: object, _cert: x509.Certificate, usage: x509.ExtendedKeyUsage | None) -> None:
    """A server's certificate: its extended key usage, if it has one, must allow serverAuth."""
    if usage is not None and not _SERVER_USAGES & set(usage):
        raise ValueError("the certificate's extended key usage does not include serverAuth")


# The Web PKI profile for the peer's certificate, with three changes: it may lack an authority key
# identifier (OpenSSL, which checks the certificates of servers we connect to, does not ask for one, and
# private CAs on LANs often leave it out); its name is matched by net/identity.py, not here (XMPP's
# SRV-ID and XmppAddr are no DNS names), so the chain is checked with a verifier that matches none; and
# that verifier's clientAuth requirement becomes serverAuth (peers show their server certificate).
_EE_POLICY = ExtensionPolicy.webpki_defaults_ee() \
    .may_be_present(x509.AuthorityKeyIdentifier, Criticality.AGNOSTIC, None) \
    .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None) \
    .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _server_auth)
ALPN = b"xmpp-server"  # XEP-0368


class TlsStream:
    """A server-side TLS session over an accepted connection: `read`, `write`, `drain`, `close` like
    asyncio's streams (and `transport` for the driver's buffer check and abort)."""

    def __init__(self, conn: SSL.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conn = conn
        self._engine = TlsEngine(conn)
        self._reader = reader
        self._writer = writer
        self.version: str | None = None
        self.peer_chain: list[x509.Certificate] = []

    @property
    def transport(self) -> TlsStream:
        return self

    async def handshake(self) -> None:
        while not self._engine.handshake():
            self._flush()
            data = await self._reader.read(CHUNK)
            if not data:
                raise ConnectionError("the peer closed the connection during the TLS handshake") from None
            self._engine.feed(data)
        self._flush()
        self.version = self._conn.get_protocol_version_name()
        leaf = self._conn.get_peer_certificate(as_cryptography=True)
        chain = list(self._conn.get_peer_cert_chain(as_cryptography=True) or [])
        # On the server side OpenSSL's chain may leave out the peer's own certificate.
        self.peer_chain = [] if leaf is None else chain if chain and chain[0] == leaf else [leaf, *chain]

    async def read(self, n: int = CHUNK) -> bytes:
        while True:
            try:
                data = self._engine.read()
            except SSL.Error as exc:
                raise ConnectionError(f"TLS: {exc}") from None
            self._flush()  # TLS 1.3 may have something to say first (session tickets, key updates)
            if data is None:
                return b""
            if data:
                return data
            received = await self._reader.read(CHUNK)
            if not received:
                return b""
            self._engine.feed(received)

    def write(self, data: bytes) -> None:
        if self._writer.is_closing():
            return
        self._engine.send(data)
        self._flush()

    def _flush(self) -> None:
        out = self._engine.outgoing()
        if out:
            self._writer.write(out)

    async def drain(self) -> None:
        await self._writer.drain()

    def is_closing(self) -> bool:
        return self._writer.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._writer.transport.get_write_buffer_size()

    def get_extra_info(self, name: str, default: object = None) -> object:
        return None if name == "ssl_object" else self._writer.get_extra_info(name, default)

    def close(self) -> None:
        self._engine.shutdown()
        self._flush()
        self._writer.close()

    def abort(self) -> None:
        self._writer.transport.abort()

    def pause_reading(self) -> None:
        self._writer.transport.pause_reading()  # type: ignore[attr-defined]

    def resume_reading(self) -> None:
        self._writer.transport.resume_reading()  # type: ignore[attr-defined]


class TlsAcceptor:
    """Makes the TLS sessions of incoming s2s connections and checks the certificates their peers show."""

    def __init__(self, files_for: Callable[[str | None], tuple[Path, Path] | None],
                 ca_bundle: Callable[[], Path | None]) -> None:
        self._contexts = ContextCache(files_for, alpn=ALPN, prepare=_ask_for_certificate)
        self._ca_bundle = ca_bundle  # s2s.ca_bundle as configured now (a reload may change it)
        self._stores: dict[Path | None, Store] = {}

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, timeout: float) -> TlsStream:
        """The TLS handshake of an accepted connection (direct TLS, or after `<proceed/>`)."""
        stream = TlsStream(self._contexts.connection(), reader, writer)
        try:
            async with asyncio.timeout(timeout):
                await stream.handshake()
        except SSL.Error as exc:
            raise ssl.SSLError(f"TLS handshake failed: {exc}") from None
        return stream

    def verify_server(self, chain: list[x509.Certificate], domain: str) -> bool:
        """Whether `chain` (leaf first) is a certificate for `domain` from a trusted CA (RFC 6125)."""
        if not chain:
            return False
        try:
            verifier = PolicyBuilder().store(self._trusted()).time(dt.datetime.now(dt.UTC)) \
                .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=_EE_POLICY) \
                .build_client_verifier()
            verifier.verify(chain[0], chain[1:])
        except (VerificationError, ValueError) as exc:
            log.info("s2s: the certificate offered for %s does not validate: %s", domain, exc)
            return False
        if not names_domain(chain[0], domain):
            log.info("s2s: the certificate offered for %s does not name it", domain)
            return False
        return True

    def _trusted(self) -> Store:
        path = self._ca_bundle() or _system_bundle()
        store = self._stores.get(path)
        if store is None:
            with warnings.catch_warnings():
                # System bundles hold a few old roots with negative serial numbers; they still load.
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                anchors = x509.load_pem_x509_certificates(path.read_bytes()) if path else []
            store = self._stores[path] = Store(anchors)
        return store


def _ask_for_certificate(context: SSL.Context, _leaf: x509.Certificate) -> None:
    # Ask for the peer's certificate and take any (or none): Parlour checks it itself, so a peer whose
    # certificate does not validate can still go on with Server Dialback.
    context.set_verify(SSL.VERIFY_PEER, lambda _conn, _cert, _errno, _depth, _ok: True)


def _system_bundle() -> Path | None:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


__all__ = ["TlsAcceptor", "TlsStream"]
