"""Server-side TLS: one hardened SSLContext per certificate, and channel bindings for SCRAM-*-PLUS.

Channel bindings offered:
- ``tls-server-end-point`` (RFC 5929 §4.1): a hash of our own certificate, computed once when its
  context is built and looked up per connection through ``ssl_object.context`` (which the SNI callback
  points at the chosen certificate's context).
- ``tls-exporter`` (RFC 9266): only when the runtime exposes keying-material export. Python 3.11's
  ``ssl`` does not, so on its path it is left out; the pyOpenSSL path (net/openssl_tls.py, used while an
  OCSP response is stapled) does, and the hasattr check picks it up there (and from a later runtime's
  ``ssl`` that adds ``export_keying_material(label, length, context)``).
- ``tls-unique`` is never offered: it is deprecated (RFC 9266) and undefined for TLS 1.3.
"""

from __future__ import annotations

import logging
import ssl
import weakref
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

__all__ = ["MOZILLA_INTERMEDIATE_CIPHERS", "channel_bindings", "end_point_hash", "make_server_context",
           "remember_end_point"]

log = logging.getLogger(__name__)

# Mozilla "intermediate" TLS 1.2 suites. The DHE-RSA suites of older revisions are left out: we load
# no DH parameters, so OpenSSL could never pick them anyway. TLS 1.3 suites are OpenSSL's defaults.
MOZILLA_INTERMEDIATE_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)

_EXPORTER_LABEL = b"EXPORTER-Channel-Binding"

# Context -> tls-server-end-point value of the certificate it serves; weak so that contexts dropped
# after a certificate reload take their entry with them.
# pyOpenSSL's contexts (net/openssl_tls.py) are kept here too.
_END_POINTS: weakref.WeakKeyDictionary[object, bytes] = weakref.WeakKeyDictionary()


def make_server_context(cert_chain: Path, key: Path) -> ssl.SSLContext:
    """Build a server context for one certificate: TLS 1.2+ (1.3 preferred), ECDHE only, no renegotiation.

    The client picks among the (all strong) TLS 1.2 suites, as Mozilla "intermediate" recommends; ECDH
    groups are left to OpenSSL's automatic choice (X25519, P-256, P-384), since ``set_ecdh_curve``
    would narrow them to one. Session tickets stay on. Raises ``ssl.SSLError`` or ``OSError`` when the
    files cannot be loaded or the key does not match the certificate.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(MOZILLA_INTERMEDIATE_CIPHERS)
    # A fresh ECDHE key per handshake needs no flag: OpenSSL >= 1.1 always does it.
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.load_cert_chain(certfile=str(cert_chain), keyfile=str(key))
    remember_end_point(ctx, _first_certificate(cert_chain.read_bytes()))
    return ctx


def remember_end_point(context: object, leaf: x509.Certificate) -> None:
    """Note the ``tls-server-end-point`` value of the certificate a context (ssl's or pyOpenSSL's) serves."""
    value = end_point_hash(leaf)
    if value is not None:
        _END_POINTS[context] = value
    else:
        log.info("%s: signature algorithm has no hash; tls-server-end-point not offered", leaf.subject.rfc4514_string())


def end_point_hash(cert: x509.Certificate) -> bytes | None:
    """The RFC 5929 §4.1 ``tls-server-end-point`` value of ``cert``, or None when it is undefined.

    The hash is the certificate's signature hash, upgraded to SHA-256 for MD5 and SHA-1. Signatures
    without a separate hash (Ed25519, Ed448) have no defined value, so no binding is offered for them
    rather than one a client might compute differently.
    """
    algorithm = cert.signature_hash_algorithm
    if algorithm is None:
        return None
    if isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(cert.public_bytes(Encoding.DER))
    return digest.finalize()


def channel_bindings(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> dict[str, bytes]:
    """Channel-binding data available on an established server-side connection, by RFC 5056 name."""
    bindings: dict[str, bytes] = {}
    end_point = _END_POINTS.get(ssl_object.context)
    if end_point is not None:
        bindings["tls-server-end-point"] = end_point
    exporter = getattr(ssl_object, "export_keying_material", None)
    # RFC 9266 §3: without extended master secret, TLS 1.2 exporters are unsafe; require TLS 1.3.
    if exporter is not None and ssl_object.version() == "TLSv1.3":
        bindings["tls-exporter"] = bytes(exporter(_EXPORTER_LABEL, 32, None))
    return bindings


def _first_certificate(pem: bytes) -> x509.Certificate:
    certs = x509.load_pem_x509_certificates(pem)
    return certs[0]
