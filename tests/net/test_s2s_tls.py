"""Incoming s2s TLS (net/s2s_tls.py) over real loopback sockets: the handshake asks for the peer's
certificate and refuses none (trusted, untrusted, or absent), data flows both ways, and the certificate
is then checked for a domain per RFC 6125 (serverAuth-only certificates included)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from appliance.net.s2s_tls import TlsAcceptor, TlsStream
from tests.integration.prosody_peer import FederationCA, Issued, srv_id, xmpp_addr


async def _handshake(acceptor: TlsAcceptor, client_cert: Issued | None) -> tuple[TlsStream, bytes]:
    """Connect with Python's ssl (as an initiating server does), showing `client_cert`; the server side
    answers "pong" to "ping". Returns the server's session and what the client read."""
    accepted: asyncio.Future[TlsStream] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = await acceptor.accept(reader, writer, timeout=5)
        assert await stream.read() == b"ping"
        stream.write(b"pong")
        await stream.drain()
        accepted.set_result(stream)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    if client_cert is not None:
        context.load_cert_chain(client_cert.cert, client_cert.key)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="b.test")
        writer.write(b"ping")
        answer = await asyncio.wait_for(reader.readexactly(4), 5)
        stream = await asyncio.wait_for(accepted, 5)
        writer.close()
        return stream, answer
    finally:
        server.close()


@pytest.fixture
def cas(tmp_path: Path) -> tuple[FederationCA, FederationCA]:
    return FederationCA(tmp_path / "trusted"), FederationCA(tmp_path / "other")


async def test_any_certificate_is_taken_and_checked_afterwards(cas: tuple[FederationCA, FederationCA]) -> None:
    trusted, other = cas
    ours = trusted.issue("b.test")
    acceptor = TlsAcceptor(lambda _name: (ours.cert, ours.key), lambda: trusted.pem)

    stream, answer = await _handshake(acceptor, trusted.issue("a.test"))  # serverAuth only
    assert answer == b"pong" and stream.version in ("TLSv1.2", "TLSv1.3")
    assert acceptor.verify_server(stream.peer_chain, "a.test")
    assert not acceptor.verify_server(stream.peer_chain, "c.test")  # it names another domain

    stream, answer = await _handshake(acceptor, other.issue("a.test"))  # a CA we do not trust: not refused
    assert answer == b"pong" and stream.peer_chain
    assert not acceptor.verify_server(stream.peer_chain, "a.test")

    stream, answer = await _handshake(acceptor, None)  # no certificate at all: dialback it is
    assert answer == b"pong" and stream.peer_chain == []
    assert not acceptor.verify_server(stream.peer_chain, "a.test")


async def test_srv_id_and_xmpp_addr_certificates_validate(cas: tuple[FederationCA, FederationCA]) -> None:
    """Certificates without any DNS-ID: the chain is checked apart from the name, which RFC 6125's XMPP
    identifiers give (net/identity.py)."""
    trusted, _ = cas
    ours = trusted.issue("b.test")
    acceptor = TlsAcceptor(lambda _name: (ours.cert, ours.key), lambda: trusted.pem)
    for names in ([xmpp_addr("a.test")], [srv_id("_xmpp-server.a.test")]):
        stream, _ = await _handshake(acceptor, trusted.issue("a.test", names=names))
        assert acceptor.verify_server(stream.peer_chain, "a.test")
        assert not acceptor.verify_server(stream.peer_chain, "c.test")
