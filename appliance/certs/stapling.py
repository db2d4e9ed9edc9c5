"""Which TLS a new c2s or HTTPS connection gets: pyOpenSSL with the OCSP response stapled while the fetcher
holds one for some served certificate (Python's `ssl` cannot staple on the server side), else the `ssl`
module's context from the store, which is faster.

Certificates are chosen by SNI on both paths, from the same store; with pyOpenSSL, a certificate without
a response simply goes unstapled. While an ACME TLS-ALPN-01 challenge is answered, `ssl` serves (its
contexts carry the challenge certificates).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from OpenSSL import SSL

from appliance.certs.ocsp import OcspFetcher
from appliance.certs.store import CertificateStore
from appliance.net.openssl_tls import ContextCache, OpenSslServer, Tls

__all__ = ["StaplingTls"]


class StaplingTls:
    """The TLS chooser of the c2s and HTTPS listeners; one per server."""

    def __init__(self, store: CertificateStore, fetcher: OcspFetcher) -> None:
        self._store = store
        self._fetcher = fetcher
        self._servers: dict[tuple[str, ...], OpenSslServer] = {}

    def choose(self, alpn: list[str] | None = None) -> Tls:
        """The TLS for one new connection (or STARTTLS) whose listener speaks `alpn`."""
        if self._fetcher.any_staple() and not self._store.challenges_pending():
            return self._server(tuple(alpn or ()))
        return self._store.current_context(alpn=alpn)

    def _server(self, alpn: tuple[str, ...]) -> OpenSslServer:
        server = self._servers.get(alpn)
        if server is None:
            contexts = ContextCache(self._store.files_for, alpn=alpn[0].encode() if alpn else None,
                                    prepare=self._staple)
            server = self._servers[alpn] = OpenSslServer(contexts)
        return server

    def _staple(self, context: SSL.Context, leaf: x509.Certificate) -> None:
        context.set_ocsp_server_callback(self._on_status_request, leaf.fingerprint(hashes.SHA256()).hex())

    def _on_status_request(self, _conn: SSL.Connection, fingerprint: str) -> bytes:
        """The client asked for the certificate's status (RFC 6066 status_request): the response, or
        nothing (an empty answer staples nothing)."""
        return self._fetcher.staple_for(fingerprint) or b""
