"""The certificate store over real loopback TLS: SNI choice, hot reload, ALPN, channel bindings."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from appliance.certs.selfsigned import ensure_self_signed
from appliance.certs.store import CertificateError, CertificateStore
from appliance.net.tls import channel_bindings

LAN = ["parlour.lan", "conference.parlour.lan"]


def imported(tmp_path: Path, names: list[str], folder: str = "imported") -> tuple[Path, Path, Path]:
    """A certificate from another CA, standing in for an ACME or admin-supplied one: (chain, key, ca)."""
    made = ensure_self_signed(tmp_path / folder, names, hostname=folder)
    return made.chain, made.key, made.ca


def client_context(*cafiles: Path, alpn: list[str] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.load_verify_locations(cadata="".join(p.read_text() for p in cafiles))
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer ``cb`` with our tls-server-end-point in hex and echo anything else."""
    try:
        while line := await reader.readline():
            if line == b"cb\n":
                bindings = channel_bindings(writer.get_extra_info("ssl_object"))
                line = bindings["tls-server-end-point"].hex().encode() + b"\n"
            writer.write(line)
            await writer.drain()
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def serving(ctx: ssl.SSLContext) -> AsyncIterator[int]:
    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=ctx)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def connected(
    port: int, ctx: ssl.SSLContext, name: str | None
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter, x509.Certificate]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=name)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        yield reader, writer, x509.load_der_x509_certificate(der)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


async def roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: bytes) -> bytes:
    writer.write(line)
    await writer.drain()
    return await reader.readline()


def names_of(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.DNSName)


@pytest.fixture
def store(tmp_path: Path) -> CertificateStore:
    store = CertificateStore(tmp_path / "state")
    store.ensure_self_signed(LAN)
    return store


async def test_sni_picks_the_matching_certificate(tmp_path: Path, store: CertificateStore) -> None:
    chain, key, other_ca = imported(tmp_path, ["example.org", "*.example.org"])
    store.add(chain, key)
    local_ca = store.certs_dir / "ca.pem"
    client = client_context(local_ca, other_ca)

    async with serving(store.server_context()) as port:
        async with connected(port, client, "conference.parlour.lan") as (reader, writer, cert):
            assert "conference.parlour.lan" in names_of(cert)
            assert await roundtrip(reader, writer, b"hello\n") == b"hello\n"
        async with connected(port, client, "example.org") as (_, _, cert):
            assert names_of(cert) == ["example.org", "*.example.org"]
        async with connected(port, client, "muc.example.org") as (_, _, cert):
            assert names_of(cert) == ["example.org", "*.example.org"]
        # No matching name: the default (first configured) certificate, which the client rejects.
        with pytest.raises(ssl.SSLCertVerificationError):
            async with connected(port, client, "unknown.parlour.lan"):
                pass


async def test_default_without_sni_is_first_configured(tmp_path: Path, store: CertificateStore) -> None:
    chain, key, other_ca = imported(tmp_path, ["example.org"])
    store.add(chain, key)
    client = client_context(other_ca)
    client.check_hostname = False
    async with serving(store.server_context()) as port, connected(port, client, None) as (_, _, cert):
        assert names_of(cert) == ["example.org"]


async def test_hot_reload(tmp_path: Path, store: CertificateStore) -> None:
    chain, key, ca = imported(tmp_path, ["example.org"])
    live_chain, live_key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(chain, live_chain)
    shutil.copy(key, live_key)
    first_serial = store.add(live_chain, live_key).serial
    client = client_context(ca)
    listener_ctx = store.server_context()

    async with (
        serving(listener_ctx) as port,
        connected(port, client, "example.org") as (old_reader, old_writer, old_cert),
    ):
        assert old_cert.serial_number == first_serial
        assert not store.reload()

        # A renewal (same CA, new key and serial) lands on disk, then the server reloads.
        renewed = ensure_self_signed(tmp_path / "imported", ["example.org", "www.example.org"])
        shutil.copy(renewed.chain, live_chain)
        shutil.copy(renewed.key, live_key)
        assert store.reload()
        new_serial = store.info()[0].serial
        assert new_serial != first_serial

        async with connected(port, client, "example.org") as (reader, writer, cert):
            assert cert.serial_number == new_serial
            assert await roundtrip(reader, writer, b"new\n") == b"new\n"
        # The connection made before the reload is untouched and still works.
        assert await roundtrip(old_reader, old_writer, b"old\n") == b"old\n"
        old_binding = bytes.fromhex((await roundtrip(old_reader, old_writer, b"cb\n")).decode())
        assert old_binding == hashlib.sha256(old_cert.public_bytes(Encoding.DER)).digest()
    assert store.server_context() is not listener_ctx  # the new certificate's own context


async def test_ensure_self_signed_with_new_names_is_served(store: CertificateStore) -> None:
    client = client_context(store.certs_dir / "ca.pem")
    async with serving(store.server_context()) as port:
        store.ensure_self_signed([*LAN, "upload.parlour.lan"])
        async with connected(port, client, "upload.parlour.lan") as (_, _, cert):
            assert "upload.parlour.lan" in names_of(cert)


async def test_end_point_binding_follows_the_sni_certificate(tmp_path: Path, store: CertificateStore) -> None:
    chain, key, other_ca = imported(tmp_path, ["example.org"])
    store.add(chain, key)
    client = client_context(store.certs_dir / "ca.pem", other_ca)
    async with serving(store.server_context()) as port:
        for name in ("parlour.lan", "example.org"):
            async with connected(port, client, name) as (reader, writer, _):
                der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
                answer = await roundtrip(reader, writer, b"cb\n")
                assert bytes.fromhex(answer.decode()) == hashlib.sha256(der).digest()


async def test_alpn_survives_the_sni_switch(tmp_path: Path, store: CertificateStore) -> None:
    chain, key, _ = imported(tmp_path, ["example.org"])
    store.add(chain, key)  # the local certificate is no longer the default: SNI must switch to it
    ctx = store.server_context(alpn=["xmpp-client"])
    assert store.current_context(alpn=["xmpp-client"]) is ctx
    assert store.server_context() is not ctx
    client = client_context(store.certs_dir / "ca.pem", alpn=["xmpp-client"])
    async with serving(ctx) as port, connected(port, client, "conference.parlour.lan") as (_, writer, _):
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "xmpp-client"


def test_context_built_once(store: CertificateStore) -> None:
    assert store.server_context() is store.server_context() is store.current_context()
    store.ensure_self_signed(LAN)  # nothing changed
    assert not store.reload()
    assert store.server_context() is store.current_context()


def test_reload_keeps_previous_certificate_when_files_break(tmp_path: Path, store: CertificateStore) -> None:
    chain, key, _ = imported(tmp_path, ["example.org"])
    store.add(chain, key)
    before = store.info()
    chain.write_text("garbage")
    assert not store.reload()
    assert store.info() == before


def test_add_rejects_a_key_that_does_not_match(tmp_path: Path, store: CertificateStore) -> None:
    chain, _, _ = imported(tmp_path, ["example.org"])
    _, other_key, _ = imported(tmp_path, ["example.net"], folder="other")
    with pytest.raises(CertificateError, match="does not match"):
        store.add(chain, other_key)
    with pytest.raises(CertificateError, match="cannot read"):
        store.add(tmp_path / "missing.pem", other_key)


def test_info(tmp_path: Path, store: CertificateStore) -> None:
    chain, key, _ = imported(tmp_path, ["example.org"])
    store.add(chain, key)
    configured, local = store.info()
    assert configured.names == ("example.org",)
    assert not configured.self_signed
    assert local.names == tuple(LAN)
    assert local.self_signed and "Parlour local CA" in local.issuer
    assert local.not_after > local.not_before
    assert len(local.fingerprint_sha256) == 64
    assert local.chain == store.certs_dir / "parlour.lan.pem"


def test_no_certificate_yet(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match="No certificate"):
        CertificateStore(tmp_path).server_context()


async def test_without_sni_the_main_host_is_served_not_an_unrelated_import(tmp_path: Path,
                                                                           store: CertificateStore) -> None:
    chain, key, _other_ca = imported(tmp_path, ["unrelated.example"])
    store.add(chain, key)  # added before the local one, as imports are
    store.default_name = "parlour.lan"
    client = client_context(store.certs_dir / "ca.pem")
    client.check_hostname = False
    async with serving(store.server_context()) as port, connected(port, client, None) as (_, _, cert):
        assert "parlour.lan" in names_of(cert)
    # A name nobody covers also gets the main host's certificate, not the import.
    async with serving(store.server_context()) as port, connected(port, client, "nobody.test") as (_, _, cert):
        assert "parlour.lan" in names_of(cert)


async def test_a_valid_certificate_beats_an_expired_one_for_the_same_name(tmp_path: Path,
                                                                         store: CertificateStore) -> None:
    import datetime as dt

    old = ensure_self_signed(tmp_path / "old", ["parlour.lan"], now=dt.datetime.now(dt.UTC) - dt.timedelta(days=800))
    store.add(old.chain, old.key)  # an expired import, ahead of the local certificate in the order
    client = client_context(store.certs_dir / "ca.pem")
    async with serving(store.server_context()) as port, connected(port, client, "parlour.lan") as (_, _, cert):
        assert cert.not_valid_after_utc > dt.datetime.now(dt.UTC)
