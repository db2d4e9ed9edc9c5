"""OCSP stapling end to end: a test CA's certificate with an OCSP URL, a real responder (`openssl ocsp`), a
running Parlour, and clients that ask for the certificate status (pyOpenSSL's and `openssl s_client -status`)
on STARTTLS c2s, direct-TLS c2s and HTTPS; SCRAM-SHA-256-PLUS over the stapling (pyOpenSSL) path; a revoked
certificate; the responder down and back; a renewal."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import shutil
import socket
import ssl
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from lxml import etree
from OpenSSL import SSL

from appliance.certs import ocsp as ocsp_module
from appliance.config.model import TlsConfig
from appliance.xmpp.ns import NS_SASL2, NS_SASL_CB, NS_TLS
from tests.integration.harness import PASSWORD, Client, Harness, start_harness
from tests.integration.test_sasl2 import ScramClient, authenticate, b64
from tests.ocspca import OcspCa
from tests.web.console_helpers import admin_login, configured_server, http_session, loopback_listeners

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command (Debian openssl)")

DOMAIN = "localhost"
S2 = f"{{{NS_SASL2}}}"


@dataclass
class Served:
    ca: OcspCa
    chain: Path
    key: Path
    serial: int
    second: int = 0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    ca = OcspCa(tmp_path / "ca")
    chain, key, serial = ca.issue([DOMAIN], tmp_path / "served")
    try:
        yield Served(ca, chain, key, serial)
    finally:
        ca.stop()


SECOND = "conference.localhost"


@pytest.fixture
async def server(tmp_path: Path, served: Served) -> AsyncIterator[Harness]:
    # a second certificate, imported, for another hosted name: chosen by SNI on the pyOpenSSL path too
    chain, key, served.second = served.ca.issue([SECOND], tmp_path / "second")
    imported = tmp_path / "state" / "certs" / "imported"
    imported.mkdir(parents=True)
    shutil.copy(chain, imported / f"{SECOND}.pem")
    shutil.copy(key, imported / f"{SECOND}.key")
    served.ca.start()
    harness = await start_harness(tmp_path / "state", tls=TlsConfig(certificate=served.chain, private_key=served.key))
    try:
        yield harness
    finally:
        await harness.close()


async def stapling(harness: Harness, timeout: float = 10.0) -> None:
    fetcher = harness.server.ocsp
    assert fetcher is not None
    async with asyncio.timeout(timeout):
        while not fetcher.any_staple() or any(s.status == "pending" for s in fetcher.states.values()):
            await asyncio.sleep(0.05)


# -- a blocking XMPP client on pyOpenSSL (run in a thread: the server runs on this test's loop) ----------

class Stream:
    """Top-level elements of one XML stream read with `recv`."""

    def __init__(self, recv: Callable[[int], bytes], send: Callable[[bytes], object]) -> None:
        self._recv, self.send = recv, send
        self._parser = etree.XMLPullParser(events=("start", "end"))
        self._depth = 0

    def open(self) -> etree._Element:
        self.send(f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream="
                  f"'http://etherx.jabber.org/streams' to='{DOMAIN}' version='1.0'>".encode())
        return self.element()

    def element(self) -> etree._Element:
        while True:
            for event, element in self._parser.read_events():
                self._depth += 1 if event == "start" else -1
                if event == "end" and self._depth == 1:
                    return element
            data = self._recv(65_536)
            if not data:
                raise ConnectionError("the server closed the stream")
            self._parser.feed(data)


@dataclass
class TlsClient:
    conn: SSL.Connection
    staple: bytes | None
    features: etree._Element
    stream: Stream


def tls_client(port: int, ca: Path, *, starttls: bool, alpn: bytes | None = None, name: str = DOMAIN) -> TlsClient:
    """Connect, (STARTTLS,) handshake asking for the certificate status, and read the stream features."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if starttls:
        plain = Stream(sock.recv, sock.sendall)
        assert plain.open().find(f"{{{NS_TLS}}}starttls") is not None
        plain.send(f"<starttls xmlns='{NS_TLS}'/>".encode())
        assert plain.element().tag == f"{{{NS_TLS}}}proceed"
    # pyOpenSSL needs a blocking socket (a Python timeout makes it non-blocking): time out in the kernel.
    sock.settimeout(None)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 10, 0))
    seen: list[bytes] = []
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.load_verify_locations(str(ca))
    context.set_verify(SSL.VERIFY_PEER, lambda _c, _x, _e, _d, ok: bool(ok))
    context.set_ocsp_client_callback(lambda _conn, data, _arg: seen.append(data) or True)
    if alpn is not None:
        context.set_alpn_protos([alpn])
    conn = SSL.Connection(context, sock)
    conn.set_tlsext_host_name(name.encode())
    conn.request_ocsp()
    conn.set_connect_state()
    conn.do_handshake()
    stream = Stream(conn.recv, conn.sendall)
    return TlsClient(conn, seen[0] if seen and seen[0] else None, stream.open(), stream)


def staple_status(der: bytes | None, serial: int) -> ocsp.OCSPCertStatus:
    assert der, "no OCSP response was stapled"
    response = ocsp.load_der_ocsp_response(der)
    assert response.serial_number == serial
    return response.certificate_status


def scram_plus_login(client: TlsClient, binding: str) -> None:
    """SASL2 SCRAM-SHA-256-PLUS with `binding`, computed on the client's side of the TLS session."""
    auth = client.features.find(f"{S2}authentication")
    assert auth is not None
    mechanisms = [m.text or "" for m in auth.findall(f"{S2}mechanism")]
    cb = client.features.find(f"{{{NS_SASL_CB}}}sasl-channel-binding")
    offered = [c.get("type", "") for c in cb] if cb is not None else []
    assert "SCRAM-SHA-256-PLUS" in mechanisms and binding in offered, (mechanisms, offered)
    if binding == "tls-exporter":
        data = client.conn.export_keying_material(b"EXPORTER-Channel-Binding", 32)
    else:
        leaf = client.conn.get_peer_certificate(as_cryptography=True)
        assert leaf is not None
        data = hashlib.sha256(leaf.public_bytes(Encoding.DER)).digest()  # ECDSA-with-SHA256 certificate
    scram = ScramClient("alice", PASSWORD, (binding, data))
    client.stream.send(authenticate("SCRAM-SHA-256-PLUS", scram.first(), "ocsp-test").encode())
    challenge = client.stream.element()
    assert challenge.tag == f"{S2}challenge", etree.tostring(challenge)
    final = scram.final(base64.b64decode(challenge.text or ""), mechanisms, offered)
    client.stream.send(f"<response xmlns='{NS_SASL2}'>{b64(final)}</response>".encode())
    success = client.stream.element()
    assert success.tag == f"{S2}success", etree.tostring(success)
    assert base64.b64decode(success.findtext(f"{S2}additional-data") or "") == b"v=" + b64(
        scram.server_signature).encode()


def s_client(port: int, ca: Path, *extra: str) -> str:
    """What `openssl s_client -status` prints about the handshake."""
    done = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", DOMAIN,
                           "-CAfile", str(ca), "-status", *extra], input=b"", capture_output=True, timeout=20)
    return done.stdout.decode(errors="replace")


def https_context(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


# -- the tests ------------------------------------------------------------------------------------------

async def test_c2s_and_https_staple_the_good_response(server: Harness, served: Served) -> None:
    await server.user("alice")
    await stapling(server)
    ca = served.ca.ca_pem
    # STARTTLS, then SCRAM-SHA-256-PLUS with tls-exporter (TLS 1.3 on the pyOpenSSL path)
    client = await asyncio.to_thread(tls_client, server.port, ca, starttls=True)
    assert staple_status(client.staple, served.serial) == ocsp.OCSPCertStatus.GOOD
    assert client.conn.get_protocol_version_name() == "TLSv1.3"
    await asyncio.to_thread(scram_plus_login, client, "tls-exporter")
    client.conn.close()
    # direct TLS with ALPN xmpp-client, then SCRAM-SHA-256-PLUS with tls-server-end-point
    direct = await asyncio.to_thread(tls_client, server.tls_port, ca, starttls=False, alpn=b"xmpp-client")
    assert staple_status(direct.staple, served.serial) == ocsp.OCSPCertStatus.GOOD
    assert direct.conn.get_alpn_proto_negotiated() == b"xmpp-client"
    await asyncio.to_thread(scram_plus_login, direct, "tls-server-end-point")
    direct.conn.close()
    # SNI: the other hosted name gets its own certificate, with its own response
    other = await asyncio.to_thread(tls_client, server.tls_port, ca, starttls=False, name=SECOND)
    assert staple_status(other.staple, served.second) == ocsp.OCSPCertStatus.GOOD
    other_leaf = other.conn.get_peer_certificate(as_cryptography=True)
    assert other_leaf is not None and other_leaf.serial_number == served.second
    other.conn.close()
    # slixmpp (Python's ssl on the client side) logs in and chats over the pyOpenSSL path
    bob = await server.user("bob")
    alice_client, bob_client = Client(f"alice@{DOMAIN}/a", PASSWORD, ca), Client(f"{bob}/b", PASSWORD, ca)
    for c in (alice_client, bob_client):
        server.clients.append(c)
        c.connect(host="127.0.0.1", port=server.port)
        await asyncio.wait_for(c.started.wait(), 15)
    alice_client.send_message(mto=f"{bob}/b", mbody="stapled" * 2000)  # several TLS records
    assert (await bob_client.next_message())["body"] == "stapled" * 2000
    # openssl s_client -status on all three listeners
    outputs = await asyncio.gather(
        asyncio.to_thread(s_client, server.port, ca, "-starttls", "xmpp", "-xmpphost", DOMAIN),
        asyncio.to_thread(s_client, server.tls_port, ca, "-alpn", "xmpp-client"),
        asyncio.to_thread(s_client, server.https_port, ca, "-alpn", "http/1.1"),
    )
    for out in outputs:
        assert "OCSP Response Status: successful" in out and "Cert Status: good" in out, out
        assert "Verify return code: 0 (ok)" in out, out
    assert "ALPN protocol: http/1.1" in outputs[2]
    # HTTPS works over the pyOpenSSL path: a page, and XMPP over WebSocket
    connector = aiohttp.TCPConnector(ssl=https_context(ca))
    base = f"https://127.0.0.1:{server.https_port}"
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(f"{base}/.well-known/host-meta", server_hostname=DOMAIN) as reply:
            assert reply.status == 200 and "xmpp-websocket" in await reply.text()
        # aiohttp counts the connection as HTTPS: HSTS is sent (only on HTTPS, and not for localhost)
        async with session.get(f"{base}/admin/login", server_hostname=DOMAIN, allow_redirects=False,
                               headers={"Host": "parlour.example"}) as reply:
            assert reply.status == 200 and reply.headers.get("Strict-Transport-Security"), reply.headers
        async with session.ws_connect(f"wss://127.0.0.1:{server.https_port}/xmpp-websocket", protocols=("xmpp",),
                                      server_hostname=DOMAIN) as ws:
            await ws.send_str(f"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='{DOMAIN}' version='1.0'/>")
            opened = await ws.receive_str(timeout=5)
            assert "<open" in opened
            features = await ws.receive_str(timeout=5)
            assert "SCRAM-SHA-256-PLUS" in features, features  # HTTPS counts as TLS, with channel bindings


async def test_revoked_certificate_is_stapled_and_reported(tmp_path: Path, served: Served) -> None:
    served.ca.revoke(served.serial)
    served.ca.start()
    tls = {"certificate": str(served.chain), "private_key": str(served.key)}
    harness = await configured_server(tmp_path, extra={**loopback_listeners(), "tls": tls})
    try:
        await stapling(harness)
        # stapled as it is: clients that check refuse the certificate, which is the truth about it
        client = await asyncio.to_thread(tls_client, harness.tls_port, served.ca.ca_pem, starttls=False)
        assert staple_status(client.staple, served.serial) == ocsp.OCSPCertStatus.REVOKED
        client.conn.close()
        services = harness.server.services
        assert services is not None
        report = services.certificates.ocsp_report()
        assert [(r.status, r.names) for r in report] == [("revoked", (DOMAIN,))], report
        # the console: an alert on every page, and the certificate page says it
        async with http_session() as session:
            base = f"http://127.0.0.1:{harness.http_port}"
            status, dashboard = await admin_login(session, base)
            assert status == 200 and "is REVOKED by its certificate authority" in dashboard
            page = await (await session.get(f"{base}/admin/certificates")).text()
            assert "REVOKED by its certificate authority: clients that check refuse it" in page
            metrics = await (await session.get(f"{base}/metrics")).text()
            assert 'parlour_ocsp_status{name="localhost",status="revoked"} 1' in metrics, metrics
            assert "parlour_ocsp_requests_total 1" in metrics
        # `parlour check` fails on it
        config = harness.server.config.source
        assert config is not None
        checked = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "appliance", "check", "config", "--config", str(config)],
            capture_output=True, text=True, timeout=60)
        assert checked.returncode == 1 and "ocsp" in checked.stdout and "REVOKED" in checked.stdout, checked.stdout
    finally:
        await harness.close()


async def test_responder_down_serves_without_staple_and_retries(tmp_path: Path, served: Served,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocsp_module, "RETRY_FIRST", 0.5)
    renewed_chain, renewed_key, renewed = served.ca.issue([DOMAIN], tmp_path / "renewed")  # known to the CA
    harness = await start_harness(tmp_path / "state", tls=TlsConfig(certificate=served.chain, private_key=served.key))
    try:
        fetcher = harness.server.ocsp
        assert fetcher is not None
        async with asyncio.timeout(10):
            while fetcher.fetch_failures < 1:
                await asyncio.sleep(0.05)
        await harness.user("alice")
        client = await asyncio.to_thread(tls_client, harness.tls_port, served.ca.ca_pem, starttls=False)
        assert client.staple is None  # served on the ssl path, without a staple
        assert client.features.find(f"{S2}authentication") is not None
        client.conn.close()
        served.ca.start()  # the responder is back: the next retry staples
        await stapling(harness)
        again = await asyncio.to_thread(tls_client, harness.tls_port, served.ca.ca_pem, starttls=False)
        assert staple_status(again.staple, served.serial) == ocsp.OCSPCertStatus.GOOD
        again.conn.close()

        # A renewal (new files on disk, picked up by the server's certificate watch): the new certificate's
        # response is fetched and stapled.
        shutil.copy(renewed_key, served.key)
        shutil.copy(renewed_chain, served.chain)
        certs = harness.server.certs
        assert certs is not None
        async with asyncio.timeout(15):
            while (new := certs.info()[0]).serial != renewed or fetcher.staple_for(new.fingerprint_sha256) is None:
                await asyncio.sleep(0.1)
        last = await asyncio.to_thread(tls_client, harness.tls_port, served.ca.ca_pem, starttls=False)
        assert staple_status(last.staple, renewed) == ocsp.OCSPCertStatus.GOOD
        leaf = last.conn.get_peer_certificate(as_cryptography=True)
        assert isinstance(leaf, x509.Certificate) and leaf.serial_number == renewed
        last.conn.close()
    finally:
        await harness.close()


async def test_stapling_switched_off_fetches_nothing(tmp_path: Path, served: Served) -> None:
    served.ca.start()
    harness = await start_harness(tmp_path / "state", tls=TlsConfig(certificate=served.chain, private_key=served.key,
                                                                     ocsp_stapling=False))
    try:
        await asyncio.sleep(0.5)
        fetcher = harness.server.ocsp
        assert fetcher is not None and fetcher.fetches == 0 and not fetcher.any_staple()
        client = await asyncio.to_thread(tls_client, harness.tls_port, served.ca.ca_pem, starttls=False)
        assert client.staple is None
        client.conn.close()
    finally:
        await harness.close()


async def test_stapling_switched_on_and_off_by_a_reload_applies_at_once(tmp_path: Path, served: Served) -> None:
    served.ca.start()
    tls = TlsConfig(certificate=served.chain, private_key=served.key, ocsp_stapling=False)
    harness = await start_harness(tmp_path / "state", tls=tls)
    server = harness.server
    try:
        fetcher = server.ocsp
        assert fetcher is not None and fetcher.fetches == 0
        assert await server.reload(replace(server.config, tls=replace(tls, ocsp_stapling=True))) == []
        async with asyncio.timeout(15):  # the reload wakes the fetcher
            while not fetcher.any_staple():
                await asyncio.sleep(0.1)
        stapled = await asyncio.to_thread(tls_client, harness.tls_port, served.ca.ca_pem, starttls=False)
        assert staple_status(stapled.staple, served.serial) == ocsp.OCSPCertStatus.GOOD
        stapled.conn.close()

        assert await server.reload(replace(server.config, tls=tls)) == []
        plain = await asyncio.to_thread(tls_client, harness.tls_port, served.ca.ca_pem, starttls=False)
        assert plain.staple is None
        plain.conn.close()
        # Other TLS settings still wait for a restart, and say so.
        other = replace(tls, private_key=served.key.with_name("elsewhere.key"))
        assert await server.reload(replace(server.config, tls=other)) == ["tls"]
        assert server.config.tls.private_key == served.key
    finally:
        await harness.close()
