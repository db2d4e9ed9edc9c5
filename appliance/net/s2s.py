"""The network side of federation: connecting to remote servers (DNS, TCP, direct TLS) and TLS contexts.

Certificates of remote servers are checked against the remote *domain* (the source domain of RFC 6125,
never the SRV target): the chain by OpenSSL, with the trust anchors of `s2s.ca_bundle` or the system's,
the name by net/identity.py after the handshake (`check_peer_name`: DNS-ID, SRV-ID or XmppAddr; OpenSSL's
own host check knows DNS-IDs only). The
client context carries the certificate we serve for our own domain, so a peer can authenticate us with
SASL EXTERNAL; serverAuth-only certificates are fine for that since the peer checks them, not we.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from appliance.net.dns import S2SResolver, connect
from appliance.net.identity import names_domain
from appliance.net.s2s_tls import TlsAcceptor, TlsStream
from appliance.net.tls import MOZILLA_INTERMEDIATE_CIPHERS

ALPN = ["xmpp-server"]  # XEP-0368


class S2SNetwork:
    """Opens connections to remote servers and builds the TLS contexts for s2s streams."""

    def __init__(
        self,
        resolver: S2SResolver,
        *,
        server_context: Callable[[], ssl.SSLContext | None],
        certificate_files: Callable[[str], tuple[Path, Path] | None],
        ca_bundle: Path | None,
        connect_timeout: float,
        tls_timeout: float,
        current_ca_bundle: Callable[[], Path | None] | None = None,
    ) -> None:
        self.resolver = resolver
        self._server_context = server_context
        self._certificate_files = certificate_files
        self.ca_bundle = ca_bundle
        self.acceptor = TlsAcceptor(certificate_files, current_ca_bundle or (lambda: ca_bundle))
        self.connect_timeout = connect_timeout
        self.tls_timeout = tls_timeout

    def server_context(self) -> ssl.SSLContext | None:
        return self._server_context()

    async def accept_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> TlsStream:
        """TLS on a connection another server made to us (direct TLS, or after STARTTLS), asking for its
        certificate without refusing any (see net/s2s_tls.py)."""
        return await self.acceptor.accept(reader, writer, timeout=self.tls_timeout)

    def verify_server(self, chain: list[x509.Certificate], domain: str) -> bool:
        """Whether a peer's certificate chain validates for `domain` (RFC 6125, our trust anchors)."""
        return self.acceptor.verify_server(chain, domain)

    def check_peer_name(self, ssl_object: ssl.SSLObject | None, remote: str) -> None:
        """Raise SSLCertVerificationError unless the peer's (verified) certificate names `remote`."""
        check_peer_name(ssl_object, remote)

    def client_context(self, local: str, *, verify: bool) -> ssl.SSLContext:
        """A client context presenting our certificate for `local`; `verify`: check the peer's name and chain."""
        context = ssl.create_default_context(cafile=str(self.ca_bundle) if self.ca_bundle else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(MOZILLA_INTERMEDIATE_CIPHERS)
        context.check_hostname = False  # the name is checked by `check_peer_name` once the handshake is done
        if not verify:
            context.verify_mode = ssl.CERT_NONE
        files = self._certificate_files(local)
        if files is not None:
            context.load_cert_chain(str(files[0]), str(files[1]))
        return context

    async def connect(
        self, remote: str, local: str, *, verify: bool
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool, str]:
        """A connection to `remote`'s server: (reader, writer, TLS up already, peer address)."""
        connected = await connect(self.resolver, remote, timeout=self.connect_timeout)
        context = None
        if connected.target.direct_tls:
            context = self.client_context(local, verify=verify)
            context.set_alpn_protocols(ALPN)
        try:
            reader, writer = await asyncio.open_connection(
                sock=connected.sock, ssl=context, server_hostname=remote if context else None,
                ssl_handshake_timeout=self.tls_timeout if context else None, limit=2**20,
            )
        except BaseException:
            connected.sock.close()
            raise
        if context is not None and verify:
            try:
                check_peer_name(writer.get_extra_info("ssl_object"), remote)
            except ssl.SSLCertVerificationError:
                writer.close()
                raise
        return reader, writer, context is not None, connected.address


def check_peer_name(ssl_object: ssl.SSLObject | None, remote: str) -> None:
    """Raise SSLCertVerificationError unless the verified peer certificate of `ssl_object` names `remote`."""
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if der is None or not names_domain(x509.load_der_x509_certificate(der), remote):
        error = ssl.SSLCertVerificationError(f"the certificate does not name {remote}")
        error.verify_message = f"the certificate does not name {remote}"
        raise error
