"""OCSP responses for the certificates the server presents, fetched ahead of time so TLS can staple them.

For every served certificate whose Authority Information Access names an OCSP responder, `OcspFetcher`
builds a request (RFC 6960, SHA-1 CertID as responders expect) from the leaf and its issuer (the next
certificate of the chain), POSTs it, and keeps the response only after checking it: signed by the issuer
itself or by a responder the issuer delegated (id-kp-OCSPSigning), for this serial and this issuer, and
current (thisUpdate not in the future, nextUpdate not past). A good response is written to
``<state>/ocsp/<sha256 of the leaf>.der`` (0600) so a restart staples at once, and fetched again at half
its validity; a failure is retried with backoff while a response still valid keeps being served. A new
or renewed certificate has a new fingerprint and is fetched at the next look (every few seconds).

A certificate without an OCSP URL (self-signed, the local CA, Let's Encrypt since 2025) gets no staple.
A "revoked" answer is kept and stapled too: it is the truth about the certificate, clients that check
refuse it, and the console and `parlour check` show it as an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import aiohttp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from appliance.certs.store import CertificateInfo
from appliance.util.files import private_dir, write_atomically

__all__ = ["OcspFetcher", "OcspState", "ocsp_url", "saved_status", "verify_response"]

log = logging.getLogger(__name__)

LOOK_INTERVAL = 5.0  # seconds between looks at the served certificates (in memory: cheap)
TIMEOUT = 10.0  # seconds for one responder request
RETRY_FIRST, RETRY_MAX = 30.0, 3600.0  # backoff after failures, doubling
SKEW = dt.timedelta(minutes=5)  # clock difference tolerated on thisUpdate
NO_NEXT_UPDATE = dt.timedelta(hours=1)  # validity assumed when a responder gives no nextUpdate

Status = Literal["good", "revoked", "unknown", "no-url", "failing", "pending"]


class OcspError(ValueError):
    """A response that must not be stapled; the message says why."""


@dataclass(slots=True)
class OcspState:
    """What is known about one certificate's OCSP status (the console and `parlour check` show it)."""

    status: Status = "pending"
    der: bytes | None = None  # the response to staple (good or revoked), None when there is none
    this_update: dt.datetime | None = None
    next_update: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    error: str = ""  # the last failure, kept while an older response is still served
    failures: int = 0
    due: float = 0.0  # time.monotonic() of the next fetch
    url: str = ""

    def staple(self, now: dt.datetime | None = None) -> bytes | None:
        """The DER response to staple now, or None (none held, or it has run out)."""
        if self.der is None or self.next_update is None:
            return None
        return self.der if (now or dt.datetime.now(dt.UTC)) < self.next_update else None


def ocsp_url(cert: x509.Certificate) -> str | None:
    """The first http(s) OCSP responder URL of the certificate's Authority Information Access, if any."""
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    for access in aia:
        if (access.access_method == AuthorityInformationAccessOID.OCSP
                and isinstance(access.access_location, x509.UniformResourceIdentifier)
                and access.access_location.value.lower().startswith(("http://", "https://"))):
            return access.access_location.value
    return None


def verify_response(der: bytes, leaf: x509.Certificate, issuer: x509.Certificate,
                    now: dt.datetime | None = None) -> ocsp.OCSPResponse:
    """The parsed response when it may be stapled for `leaf`; raises `OcspError` saying why not."""
    now = now or dt.datetime.now(dt.UTC)
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        raise OcspError(f"not an OCSP response: {exc}") from None
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise OcspError(f"the responder answered {response.response_status.name.lower()}")
    if response.serial_number != leaf.serial_number:
        raise OcspError("the response is about another certificate (serial number)")
    if response.issuer_key_hash != _key_hash(leaf, issuer, response.hash_algorithm):
        raise OcspError("the response is about a certificate of another issuer")
    signer = _signer(response, leaf, issuer, now)
    try:
        _check_signature(signer.public_key(), response.signature, response.tbs_response_bytes,
                         response.signature_hash_algorithm)
    except (InvalidSignature, TypeError, ValueError):
        raise OcspError("the response's signature does not verify") from None
    if response.this_update_utc > now + SKEW:
        raise OcspError(f"the response's thisUpdate ({response.this_update_utc}) is in the future")
    next_update = response.next_update_utc
    if next_update is not None and next_update <= now:
        raise OcspError(f"the response expired at {next_update}")
    return response


def _signer(response: ocsp.OCSPResponse, leaf: x509.Certificate, issuer: x509.Certificate,
            now: dt.datetime) -> x509.Certificate:
    """The issuer when it signed the response itself, else the delegated responder certificate it issued."""
    if _is_responder(response, leaf, issuer):
        return issuer
    for candidate in response.certificates:
        if not _is_responder(response, leaf, candidate):
            continue
        try:
            candidate.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError, TypeError):
            raise OcspError("the responder's certificate was not issued by the certificate's issuer") from None
        try:
            usages = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            usages = x509.ExtendedKeyUsage([])
        if ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
            raise OcspError("the responder's certificate lacks id-kp-OCSPSigning")
        if not candidate.not_valid_before_utc <= now <= candidate.not_valid_after_utc:
            raise OcspError("the responder's certificate is not valid now")
        return candidate
    raise OcspError("the response is signed by neither the issuer nor a responder it delegated")


def _is_responder(response: ocsp.OCSPResponse, leaf: x509.Certificate, cert: x509.Certificate) -> bool:
    if response.responder_name is not None:
        return response.responder_name == cert.subject
    # ResponderID byKey is the SHA-1 of the key (RFC 6960 4.2.1)
    return response.responder_key_hash == _key_hash(leaf, cert, hashes.SHA1())


def _key_hash(leaf: x509.Certificate, cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    """The hash of `cert`'s subjectPublicKey as OCSP computes it (a CertID's issuerKeyHash does the same)."""
    return ocsp.OCSPRequestBuilder().add_certificate(leaf, cert, algorithm).build().issuer_key_hash


def _check_signature(key: object, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None) -> None:
    if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
        key.verify(signature, data, padding.PKCS1v15(), algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
        key.verify(signature, data, ec.ECDSA(algorithm))
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        key.verify(signature, data)
    else:
        raise TypeError("unsupported responder key")


class OcspFetcher:
    """Keeps an OCSP response for every served certificate that names a responder (see the module)."""

    def __init__(self, state_dir: Path, certificates: Callable[[], list[CertificateInfo]], *,
                 enabled: Callable[[], bool] = lambda: True) -> None:
        self._dir = state_dir / "ocsp"
        self._certificates = certificates
        self._enabled = enabled
        self.states: dict[str, OcspState] = {}  # by the leaf's SHA-256 fingerprint
        self._wake = asyncio.Event()
        self.fetches = 0  # responder requests made, and how many failed (metrics)
        self.fetch_failures = 0

    def staple_for(self, fingerprint: str) -> bytes | None:
        """The response to staple for the certificate with this SHA-256 fingerprint, if one is held."""
        state = self.states.get(fingerprint)
        return state.staple() if state is not None and self._enabled() else None

    def any_staple(self) -> bool:
        """Whether some served certificate has a response to staple now (TLS then runs on pyOpenSSL)."""
        return self._enabled() and any(state.staple() is not None for state in self.states.values())

    def state_of(self, info: CertificateInfo) -> OcspState | None:
        return self.states.get(info.fingerprint_sha256)

    def wake(self) -> None:
        """Look at the certificates now (after a renewal or reload)."""
        self._wake.set()

    async def run(self) -> None:
        """The maintenance task: never ends by itself; each round fetches what is due."""
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("OCSP: refreshing the responses failed")
            waits = [s.due - time.monotonic() for s in self.states.values() if s.status != "no-url"]
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.5, min([LOOK_INTERVAL, *waits])))

    async def refresh(self) -> None:
        """Fetch every response that is due (a new certificate's at once); forget certificates gone."""
        if not self._enabled():
            return
        served = {info.fingerprint_sha256: info for info in self._certificates()}
        for fingerprint in [f for f in self.states if f not in served]:
            del self.states[fingerprint]
        for fingerprint, info in served.items():
            state = self.states.get(fingerprint)
            if state is None:
                state = self.states[fingerprint] = self._first_state(info)
            if state.status != "no-url" and state.due <= time.monotonic():
                await self._fetch(info, state)

    def _first_state(self, info: CertificateInfo) -> OcspState:
        """A certificate seen for the first time: whether it names a responder, and a response saved before."""
        pair = _leaf_and_issuer(info)
        url = ocsp_url(pair[0]) if pair is not None else None
        if pair is None or url is None:
            log.info("OCSP: %s names no OCSP responder; nothing to staple", ", ".join(info.names) or info.subject)
            return OcspState(status="no-url")
        state = OcspState(url=url)
        with contextlib.suppress(OSError, OcspError):
            self._accept(state, self._path(info).read_bytes(), *pair, saved=True)
        return state

    async def _fetch(self, info: CertificateInfo, state: OcspState) -> None:
        pair = _leaf_and_issuer(info)
        if pair is None:
            return
        leaf, issuer = pair
        request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()
        self.fetches += 1
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session, \
                    session.post(state.url, data=request.public_bytes(serialization.Encoding.DER),
                                 headers={"Content-Type": "application/ocsp-request"}) as reply:
                if reply.status != 200:
                    raise OcspError(f"HTTP {reply.status}")
                der = await reply.read()
            self._accept(state, der, leaf, issuer)
            self._save(info, der)
        except (OcspError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.fetch_failures += 1
            state.failures += 1
            state.error = str(exc) or type(exc).__name__
            delay = min(RETRY_MAX, RETRY_FIRST * 2 ** (state.failures - 1))
            state.due = time.monotonic() + delay
            if state.staple() is None:
                state.status, state.der = "failing", None
            log.warning("OCSP: no response for %s from %s: %s; next try in %d s%s",
                        ", ".join(info.names), state.url, state.error, delay,
                        "" if state.der is None else " (the previous response is still stapled)")

    def _accept(self, state: OcspState, der: bytes, leaf: x509.Certificate, issuer: x509.Certificate, *,
                saved: bool = False) -> None:
        response = verify_response(der, leaf, issuer)
        now = dt.datetime.now(dt.UTC)
        this_update = response.this_update_utc
        next_update = response.next_update_utc or max(now, this_update) + NO_NEXT_UPDATE
        status = response.certificate_status
        state.this_update, state.next_update, state.error, state.failures = this_update, next_update, "", 0
        # Fetch again at half the validity (at least a minute on, so a short-lived answer cannot spin).
        half = (next_update - max(this_update, now)) / 2
        state.due = time.monotonic() + max(60.0, half.total_seconds())
        if status == ocsp.OCSPCertStatus.GOOD:
            state.status, state.der, state.revoked_at = "good", der, None
            log.info("OCSP: %s response for serial %x, valid until %s%s", "saved" if saved else "good",
                     leaf.serial_number, next_update, "" if saved else "; stapling it")
        elif status == ocsp.OCSPCertStatus.REVOKED:
            state.status, state.der, state.revoked_at = "revoked", der, response.revocation_time_utc
            log.error("OCSP: the certificate with serial %x was REVOKED at %s: clients that check will refuse it; "
                      "replace it (parlour cert renew --force, or import a new one)",
                      leaf.serial_number, response.revocation_time_utc)
        else:
            state.status, state.der = "unknown", None
            log.warning("OCSP: the responder does not know the certificate with serial %x", leaf.serial_number)

    def _save(self, info: CertificateInfo, der: bytes) -> None:
        try:
            write_atomically(private_dir(self._dir) / f"{info.fingerprint_sha256}.der", der, mode=0o600)
        except OSError as exc:
            log.warning("OCSP: cannot keep the response in %s: %s", self._dir, exc)

    def _path(self, info: CertificateInfo) -> Path:
        return self._dir / f"{info.fingerprint_sha256}.der"


def saved_status(state_dir: Path, chain: Path) -> tuple[str, dt.datetime | None] | None:
    """What the running server last heard about the certificate in `chain` (for `parlour check`): "good",
    "revoked" or "unknown" and when that answer runs out ("expired" once it has), from the response it keeps;
    None when it keeps none (no responder named, stapling off, or never answered)."""
    try:
        certs = x509.load_pem_x509_certificates(chain.read_bytes())
        der = (state_dir / "ocsp" / f"{certs[0].fingerprint(hashes.SHA256()).hex()}.der").read_bytes()
    except (OSError, ValueError):
        return None
    if len(certs) < 2:
        return None
    try:
        response = verify_response(der, certs[0], certs[1])
    except OcspError:
        return "expired", None
    status = {ocsp.OCSPCertStatus.GOOD: "good", ocsp.OCSPCertStatus.REVOKED: "revoked"}.get(
        response.certificate_status, "unknown")
    return status, response.next_update_utc


def _leaf_and_issuer(info: CertificateInfo) -> tuple[x509.Certificate, x509.Certificate] | None:
    """The leaf and its issuer from the chain file, when the file still holds the certificate described."""
    try:
        chain = x509.load_pem_x509_certificates(info.chain.read_bytes())
    except (OSError, ValueError):
        return None
    leaf = chain[0]
    if leaf.fingerprint(hashes.SHA256()).hex() != info.fingerprint_sha256:
        return None  # the file changed since the store read it: the store's reload will come by
    return (leaf, chain[1]) if len(chain) > 1 and chain[1].subject == leaf.issuer else None
