"""The local CA and its leaf: contents, file modes, and when the leaf is re-issued."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.certs.selfsigned import CA_LIFETIME, LEAF_LIFETIME, ensure_self_signed, san_names

NAMES = ["parlour.lan", "conference.parlour.lan", "upload.parlour.lan"]


def chain(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def test_first_start_creates_ca_and_leaf(tmp_path: Path) -> None:
    result = ensure_self_signed(tmp_path / "certs", NAMES, hostname="box")

    assert result.issued
    assert result.ca == tmp_path / "certs" / "ca.pem"
    assert result.chain == tmp_path / "certs" / "parlour.lan.pem"
    assert result.key == tmp_path / "certs" / "parlour.lan.key"
    ca = x509.load_pem_x509_certificate(result.ca.read_bytes())
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Parlour local CA (box)"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    assert ca.not_valid_after_utc - ca.not_valid_before_utc == CA_LIFETIME <= dt.timedelta(days=3 * 365)
    constraints = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    assert constraints.value.permitted_subtrees == [x509.DNSName("parlour.lan")]  # its service names are under it
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"

    leaf, issuer = chain(result.chain)
    assert issuer == ca
    leaf.verify_directly_issued_by(ca)
    assert set(san_names(leaf)) == set(NAMES)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= LEAF_LIFETIME <= dt.timedelta(days=397)
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert leaf.public_key().curve.name == "secp256r1"


def test_key_files_are_private(tmp_path: Path) -> None:
    result = ensure_self_signed(tmp_path / "certs", NAMES)
    for key in (result.key, result.ca.with_suffix(".key")):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert not [p for p in (tmp_path / "certs").iterdir() if p.name.startswith(".")]


def test_second_start_keeps_everything(tmp_path: Path) -> None:
    first = ensure_self_signed(tmp_path, NAMES)
    before = first.chain.read_bytes(), first.ca.read_bytes()
    again = ensure_self_signed(tmp_path, [NAMES[0], NAMES[2], NAMES[1], "PARLOUR.lan."])
    assert not again.issued
    assert (again.chain.read_bytes(), again.ca.read_bytes()) == before


def test_leaf_reissued_when_names_change_ca_kept(tmp_path: Path) -> None:
    first = ensure_self_signed(tmp_path, NAMES)
    ca_before = first.ca.read_bytes()
    serial_before = chain(first.chain)[0].serial_number

    second = ensure_self_signed(tmp_path, [*NAMES, "pubsub.parlour.lan"])

    assert second.issued
    leaf = chain(second.chain)[0]
    assert leaf.serial_number != serial_before
    assert "pubsub.parlour.lan" in san_names(leaf)
    assert second.ca.read_bytes() == ca_before


def test_leaf_reissued_within_30_days_of_expiry(tmp_path: Path) -> None:
    first = ensure_self_signed(tmp_path, NAMES)
    not_after = chain(first.chain)[0].not_valid_after_utc

    assert not ensure_self_signed(tmp_path, NAMES, now=not_after - dt.timedelta(days=31)).issued
    later = not_after - dt.timedelta(days=29)
    renewed = ensure_self_signed(tmp_path, NAMES, now=later)
    assert renewed.issued
    assert chain(renewed.chain)[0].not_valid_after_utc > later + dt.timedelta(days=300)


def test_loopback_names_and_ip_sans(tmp_path: Path) -> None:
    result = ensure_self_signed(tmp_path, ["parlour.lan", "192.168.1.5"], loopback=True)
    san = chain(result.chain)[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["parlour.lan", "localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("192.168.1.5"),
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }


def test_internationalised_name_becomes_a_label(tmp_path: Path) -> None:
    result = ensure_self_signed(tmp_path, ["Bücher.Example."])
    assert san_names(chain(result.chain)[0]) == ("xn--bcher-kva.example",)


def test_mismatched_key_is_repaired(tmp_path: Path) -> None:
    first = ensure_self_signed(tmp_path, NAMES)
    first.key.write_bytes(first.ca.with_suffix(".key").read_bytes())
    assert ensure_self_signed(tmp_path, NAMES).issued


def test_new_ca_means_new_leaf(tmp_path: Path) -> None:
    first = ensure_self_signed(tmp_path, NAMES)
    first.ca.unlink()  # both files moved away, as the error for a damaged CA tells
    first.ca.with_suffix(".key").unlink()
    second = ensure_self_signed(tmp_path, NAMES)
    assert second.issued
    leaf, ca = chain(second.chain)
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(second.ca.read_bytes()))
    assert ca == x509.load_pem_x509_certificate(second.ca.read_bytes())


def test_needs_a_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one name"):
        ensure_self_signed(tmp_path, [])
