"""The local CA that users install as a trusted root: it can vouch only for the hosted names (checked by
OpenSSL in real TLS handshakes), it is replaced with a warning when it ends or no longer fits, and damaged
files stop the start with a message instead of a silent new CA."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.certs.selfsigned import CA_LIFETIME, CA_RENEW_BEFORE, LocalCaError, ensure_self_signed
from tests.web.console_helpers import configured_config

NAMES = ["parlour.lan", "conference.parlour.lan", "upload.parlour.lan"]


def _forge(folder: Path, name: str) -> tuple[Path, Path]:
    """A leaf for `name` signed with the local CA's key, as whoever took the server could make."""
    ca = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        san = x509.DNSName(name)
    now = dt.datetime.now(dt.UTC)
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    chain, key_file = folder / f"forged-{name}.pem", folder / f"forged-{name}.key"
    chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return chain, key_file


async def _handshake(chain: Path, key: Path, ca: Path, server_name: str) -> None:
    """A TLS handshake over loopback: the server shows `chain`, the client trusts only `ca`."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(chain, key)
    server = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        client_ctx = ssl.create_default_context(cafile=str(ca))
        _reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx,
                                                        server_hostname=server_name)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_the_ca_vouches_only_for_the_hosted_names(tmp_path: Path) -> None:
    made = ensure_self_signed(tmp_path, NAMES, loopback=True)
    await _handshake(made.chain, made.key, made.ca, "conference.parlour.lan")  # the real leaf: fine
    for name in ("parlour.lan", "chat.parlour.lan"):  # a new leaf under a hosted name: allowed
        await _handshake(*_forge(tmp_path, name), made.ca, name)
    for name in ("bank.example", "parlour.lan.evil.example", "10.0.0.1"):
        with pytest.raises(ssl.SSLCertVerificationError, match="subtree violation"):
            await _handshake(*_forge(tmp_path, name), made.ca, name)


async def test_without_ip_names_no_ip_address_is_allowed(tmp_path: Path) -> None:
    made = ensure_self_signed(tmp_path, NAMES)
    with pytest.raises(ssl.SSLCertVerificationError, match="excluded subtree violation"):
        await _handshake(*_forge(tmp_path, "192.168.1.1"), made.ca, "192.168.1.1")


@pytest.mark.parametrize("damage", ["garbage ca.pem", "empty ca.pem", "no ca.pem", "no ca.key", "other key"])
def test_damaged_ca_files_stop_with_a_message_and_are_kept(tmp_path: Path, damage: str) -> None:
    ensure_self_signed(tmp_path, NAMES)
    ca, key = tmp_path / "ca.pem", tmp_path / "ca.key"
    if damage == "garbage ca.pem":
        ca.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    elif damage == "empty ca.pem":
        ca.write_bytes(b"")
    elif damage == "no ca.pem":
        ca.unlink()
    elif damage == "no ca.key":
        key.unlink()
    else:
        ensure_self_signed(tmp_path / "other", NAMES)
        key.write_bytes((tmp_path / "other" / "ca.key").read_bytes())
    before = {p: p.read_bytes() for p in (ca, key) if p.exists()}
    with pytest.raises(LocalCaError) as caught:
        ensure_self_signed(tmp_path, NAMES)
    message = str(caught.value)
    assert str(ca if damage != "no ca.key" and damage != "other key" else key) in message
    assert "from a backup" in message and "move both" in message
    assert {p: p.read_bytes() for p in (ca, key) if p.exists()} == before  # nothing replaced


async def test_parlour_run_says_what_is_wrong_with_the_ca(tmp_path: Path) -> None:
    config = await configured_config(tmp_path)
    ca = config.server.state_dir / "certs" / "ca.pem"
    ca.parent.mkdir(parents=True, exist_ok=True)
    ca.write_text("damaged\n")
    (ca.parent / "ca.key").write_text("damaged\n")
    run = subprocess.run([sys.executable, "-m", "appliance", "run", "--config", str(config.source)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stderr
    assert f"The local CA certificate {ca} cannot be read" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_ca_near_its_end_or_without_constraints_is_replaced_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = ensure_self_signed(tmp_path, NAMES)
    ca = x509.load_pem_x509_certificate(first.ca.read_bytes())
    late = ca.not_valid_after_utc - CA_RENEW_BEFORE + dt.timedelta(days=1)
    assert ensure_self_signed(tmp_path, NAMES, now=late - dt.timedelta(days=2)).ca.read_bytes() == first.ca.read_bytes()
    renewed = ensure_self_signed(tmp_path, NAMES, now=late)
    new_ca = x509.load_pem_x509_certificate(renewed.ca.read_bytes())
    assert renewed.issued and new_ca.not_valid_after_utc > late + CA_LIFETIME - dt.timedelta(days=1)
    assert "Replaced the local certificate authority" in caplog.text and "must now trust the new" in caplog.text

    # A CA made before name constraints existed (as older versions made it) is replaced too.
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Parlour local CA (old)")])
    now = dt.datetime.now(dt.UTC)
    old = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
           .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
           .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
           .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
           .sign(key, hashes.SHA256()))
    (tmp_path / "ca.pem").write_bytes(old.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "ca.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    caplog.clear()
    replaced = ensure_self_signed(tmp_path, NAMES)
    assert "without name constraints" in caplog.text
    assert x509.load_pem_x509_certificate(replaced.ca.read_bytes()).extensions.get_extension_for_class(
        x509.NameConstraints).critical

    caplog.clear()  # a host outside the CA's names: replaced, and the warning says which
    ensure_self_signed(tmp_path, [*NAMES, "second.example"])
    assert "does not cover second.example" in caplog.text
