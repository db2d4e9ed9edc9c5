"""Server TLS contexts and channel bindings, over a real loopback connection."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
import ssl
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

import appliance.net.tls as tls
from appliance.certs.selfsigned import SelfSigned, ensure_self_signed
from appliance.net.addresses import peer_is_loopback
from appliance.net.tls import channel_bindings, end_point_hash, make_server_context

NAME = "parlour.lan"


@pytest.fixture
def cert(tmp_path: Path) -> SelfSigned:
    return ensure_self_signed(tmp_path, [NAME])


async def handshake(
    server_ctx: ssl.SSLContext, ca: Path, *, max_version: ssl.TLSVersion | None = None
) -> tuple[ssl.SSLObject, dict[str, bytes]]:
    """Connect a verifying client; return its SSL object and the bindings the server computed."""
    seen: asyncio.Future[dict[str, bytes]] = asyncio.get_running_loop().create_future()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.set_result(channel_bindings(writer.get_extra_info("ssl_object")))
        await reader.read()
        writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    client = ssl.create_default_context(cafile=str(ca))
    if max_version is not None:
        with warnings.catch_warnings():  # TLSv1_1 is deprecated, which is the point of that test
            warnings.simplefilter("ignore", DeprecationWarning)
            client.maximum_version = max_version
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname=NAME)
        try:
            return writer.get_extra_info("ssl_object"), await seen
        finally:
            writer.close()
    finally:
        server.close()
        await server.wait_closed()


def test_context_settings(cert: SelfSigned) -> None:
    ctx = make_server_context(cert.chain, cert.key)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    for flag in (ssl.OP_NO_COMPRESSION, ssl.OP_NO_RENEGOTIATION):
        assert ctx.options & flag
    assert not ctx.options & ssl.OP_NO_TICKET
    tls12 = [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12
    assert all(name.startswith("ECDHE-") for name in tls12)


def test_mismatched_key_is_refused(tmp_path: Path, cert: SelfSigned) -> None:
    other = ensure_self_signed(tmp_path / "other", ["other.lan"])
    with pytest.raises(ssl.SSLError):
        make_server_context(cert.chain, other.key)


async def test_tls13_and_end_point_binding_matches_client_view(cert: SelfSigned) -> None:
    client, bindings = await handshake(make_server_context(cert.chain, cert.key), cert.ca)
    assert client.version() == "TLSv1.3"
    der = client.getpeercert(binary_form=True)
    assert bindings == {"tls-server-end-point": hashlib.sha256(der).digest()}  # no exporter, no unique


async def test_tls12_uses_ecdhe(cert: SelfSigned) -> None:
    ctx = make_server_context(cert.chain, cert.key)
    client, bindings = await handshake(ctx, cert.ca, max_version=ssl.TLSVersion.TLSv1_2)
    assert client.version() == "TLSv1.2"
    assert client.cipher()[0].startswith("ECDHE-ECDSA-")
    assert "tls-unique" not in bindings
    assert "tls-server-end-point" in bindings


async def test_tls11_is_refused(cert: SelfSigned) -> None:
    ctx = make_server_context(cert.chain, cert.key)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await handshake(ctx, cert.ca, max_version=ssl.TLSVersion.TLSv1_1)


async def test_end_point_hash_computed_once_per_certificate(
    cert: SelfSigned, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[x509.Certificate] = []

    def counting(c: x509.Certificate) -> bytes | None:
        calls.append(c)
        return end_point_hash(c)

    monkeypatch.setattr(tls, "end_point_hash", counting)
    ctx = make_server_context(cert.chain, cert.key)
    first = (await handshake(ctx, cert.ca))[1]
    second = (await handshake(ctx, cert.ca))[1]
    assert first == second
    assert len(calls) == 1


def certificate(sign_hash: hashes.HashAlgorithm | None) -> x509.Certificate:
    key = (
        ed25519.Ed25519PrivateKey.generate() if sign_hash is None else ec.generate_private_key(ec.SECP384R1())
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
    )
    return builder.sign(key, sign_hash)


@pytest.mark.parametrize(
    ("sign_hash", "expected"),
    [(hashes.SHA384(), hashlib.sha384), (hashes.SHA512(), hashlib.sha512)],
)
def test_end_point_hash_follows_rfc5929(
    sign_hash: hashes.HashAlgorithm, expected: Callable[[bytes], Any]
) -> None:
    cert = certificate(sign_hash)
    assert end_point_hash(cert) == expected(cert.public_bytes(Encoding.DER)).digest()


@pytest.mark.parametrize("weak", [hashes.SHA1(), hashes.MD5()])
def test_end_point_hash_upgrades_md5_and_sha1_to_sha256(weak: hashes.HashAlgorithm) -> None:
    # cryptography no longer signs with these, so a stand-in carries the old signature's hash.
    real = certificate(hashes.SHA384())

    class OldCertificate:
        signature_hash_algorithm = weak
        public_bytes = real.public_bytes

    digest = end_point_hash(OldCertificate())  # type: ignore[arg-type]
    assert digest == hashlib.sha256(real.public_bytes(Encoding.DER)).digest()


def test_no_end_point_hash_for_hashless_signatures() -> None:
    assert end_point_hash(certificate(None)) is None


def test_exporter_offered_only_when_the_runtime_has_it() -> None:
    assert not hasattr(ssl.SSLObject, "export_keying_material")  # Python 3.11: no exporter

    class FutureSSLObject:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)

        def __init__(self, version: str) -> None:
            self._version = version

        def version(self) -> str:
            return self._version

        def export_keying_material(self, label: bytes, length: int, context: bytes | None) -> bytes:
            assert (label, context) == (b"EXPORTER-Channel-Binding", None)
            return b"x" * length

    assert channel_bindings(FutureSSLObject("TLSv1.3")) == {"tls-exporter": b"x" * 32}  # type: ignore[arg-type]
    assert channel_bindings(FutureSSLObject("TLSv1.2")) == {}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        (("127.0.0.1", 5222), True),
        (("127.8.9.10", 5222), True),
        (("::1", 5222, 0, 0), True),
        (("::ffff:127.0.0.1", 5222, 0, 0), True),
        ("127.0.0.1", True),
        (ipaddress.ip_address("::1"), True),
        (("192.168.1.2", 5222), False),
        (("fe80::1%eth0", 5222, 0, 2), False),
        (("::ffff:10.0.0.1", 5222, 0, 0), False),
        (("localhost", 5222), False),
        ("/run/parlour.sock", False),
        ("", False),
        (None, False),
        ((), False),
    ],
)
def test_peer_is_loopback(address: object, loopback: bool) -> None:
    assert peer_is_loopback(address) is loopback
