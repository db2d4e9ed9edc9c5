"""Answering ACME challenges: HTTP-01 tokens (own listener or a webroot) and TLS-ALPN-01 certificates.

The responder is shared by the ACME client (which publishes answers, in a worker thread) and the web
and TLS listeners (which read them on the event loop); plain dict operations keep that safe.
TLS-ALPN-01 (RFC 8737): while a name is being validated, TLS handshakes asking for it get a
self-signed certificate carrying the critical ``acmeIdentifier`` extension and ALPN ``acme-tls/1``.
Python cannot see the client's ALPN offer before choosing the certificate, so ordinary clients asking
for that exact name during those few seconds get the challenge certificate too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import secrets
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path

from acme import challenges
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ObjectIdentifier

__all__ = ["ACME_TLS_ALPN", "TLSALPN01", "WELL_KNOWN", "ChallengeResponder", "tls_alpn_certificate"]

log = logging.getLogger(__name__)

WELL_KNOWN = "/.well-known/acme-challenge/"
ACME_TLS_ALPN = "acme-tls/1"
_ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")


class TLSALPN01Response(challenges.KeyAuthorizationChallengeResponse):
    """The (empty) response to a TLS-ALPN-01 challenge; acme >= 4 no longer ships this class."""

    typ = "tls-alpn-01"


@challenges.Challenge.register
class TLSALPN01(challenges.KeyAuthorizationChallenge):
    """RFC 8737 challenge: the answer is a certificate, served by our own TLS listener."""

    response_cls = TLSALPN01Response
    typ = response_cls.typ

    def validation(self, account_key: object, **kwargs: object) -> None:
        return None


SetChallengeContext = Callable[[str, ssl.SSLContext | None], None]


class ChallengeResponder:
    """Current challenge answers, and where they are published."""

    def __init__(self, *, webroot: Path | None = None, set_tls_context: SetChallengeContext | None = None) -> None:
        self.webroot = webroot
        self._http: dict[str, str] = {}
        self._set_tls_context = set_tls_context

    # -- HTTP-01 ----------------------------------------------------------------------------------

    def answer(self, token: str) -> str | None:
        """The key authorization for ``token``, or None when it is not ours."""
        return self._http.get(token)

    def publish_http(self, token: str, validation: str) -> None:
        self._http[token] = validation
        if self.webroot is not None:
            folder = self.webroot / WELL_KNOWN.strip("/")
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".parlour.")
            with os.fdopen(fd, "w") as f:
                f.write(validation)
            os.chmod(tmp, 0o644)  # the web server runs as another user
            os.replace(tmp, folder / token)

    def withdraw_http(self, token: str) -> None:
        self._http.pop(token, None)
        if self.webroot is not None:
            (self.webroot / WELL_KNOWN.strip("/") / token).unlink(missing_ok=True)

    def publish_probe(self) -> tuple[str, str]:
        """A throw-away token and answer for the pre-flight reachability check."""
        token, value = "parlour-probe-" + secrets.token_urlsafe(16), secrets.token_urlsafe(24)
        self.publish_http(token, value)
        return token, value

    # -- TLS-ALPN-01 ------------------------------------------------------------------------------

    @property
    def tls_alpn_available(self) -> bool:
        return self._set_tls_context is not None

    def publish_tls_alpn(self, name: str, key_authorization: str) -> None:
        if self._set_tls_context is None:
            raise RuntimeError("TLS-ALPN-01 needs the certificate store")
        self._set_tls_context(name, tls_alpn_context(name, key_authorization))

    def withdraw_tls_alpn(self, name: str) -> None:
        if self._set_tls_context is not None:
            self._set_tls_context(name, None)


def tls_alpn_certificate(name: str, key_authorization: str) -> tuple[bytes, bytes]:
    """PEM certificate and key answering TLS-ALPN-01 for ``name`` (RFC 8737 §3)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    digest = hashlib.sha256(key_authorization.encode("ascii")).digest()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=True)
        # DER OCTET STRING (tag 4, length 32) holding SHA-256 of the key authorization.
        .add_extension(x509.UnrecognizedExtension(_ACME_IDENTIFIER, b"\x04\x20" + digest), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def tls_alpn_context(name: str, key_authorization: str) -> ssl.SSLContext:
    """A server context presenting the TLS-ALPN-01 certificate with ALPN ``acme-tls/1`` only."""
    cert_pem, key_pem = tls_alpn_certificate(name, key_authorization)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory() as folder:
        cert_path, key_path = Path(folder, "c.pem"), Path(folder, "k.pem")
        cert_path.write_bytes(cert_pem)
        key_path.write_bytes(key_pem)
        ctx.load_cert_chain(cert_path, key_path)
    ctx.set_alpn_protocols([ACME_TLS_ALPN])
    return ctx
