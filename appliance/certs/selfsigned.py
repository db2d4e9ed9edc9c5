"""First-start certificates: a small local CA and a leaf it signs for every hosted name.

TLS must work before any public certificate exists. The local CA is made once and kept, so a client
that trusted ``ca.pem`` keeps trusting every later leaf; the leaf is re-issued whenever the set of names
changes, it nears expiry, or its files no longer belong together.

Users install ``ca.pem`` as a trusted root on their devices, so the CA can do little harm if its key is
taken with the server: a critical nameConstraints extension limits it to the hosted names (and their
subdomains) and the IP addresses it was made for, and it lives three years. It is replaced, with a
warning that devices must trust the new ``ca.pem``, only when it nears its end or no longer covers the
hosted names; files that exist but cannot be used stop the start with a message (never a silent new CA,
which would break every device that trusted the old one).

Files in ``certs_dir``: ``ca.pem``, ``ca.key`` (0600), ``<name>.pem`` (leaf + CA) and ``<name>.key``
(0600), where ``<name>`` is the first hosted name. Every file is written to a temporary file and moved
into place with ``os.replace``, so a crash never leaves half a file.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import re
import socket
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CA_LIFETIME",
    "CA_RENEW_BEFORE",
    "LEAF_LIFETIME",
    "LOOPBACK_NAMES",
    "RENEW_BEFORE",
    "LocalCaError",
    "SelfSigned",
    "ensure_self_signed",
    "san_names",
    "write_atomic",
]

log = logging.getLogger(__name__)

# Three years: constrained to the hosted names, a stolen CA key can only impersonate names whose leaf
# key the thief holds already; the lifetime bounds how long a forgotten root stays trusted on devices,
# and three years asks users to install a new ca.pem rarely (leaves are re-issued under it every year).
CA_LIFETIME = dt.timedelta(days=3 * 365)
CA_RENEW_BEFORE = dt.timedelta(days=90)  # a new CA this long before the old one ends (devices re-trust)
LEAF_LIFETIME = dt.timedelta(days=397)  # the CA/Browser Forum and Apple ceiling is 398
RENEW_BEFORE = dt.timedelta(days=30)
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_BACKDATE = dt.timedelta(minutes=5)  # tolerate clients whose clock runs a little behind

_KEY_MODE = 0o600
_CERT_MODE = 0o644
_DIR_MODE = 0o700

_IP: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address


class LocalCaError(Exception):
    """The local CA's files exist but cannot be used; the message names the file and the way out."""


@dataclass(frozen=True, slots=True)
class SelfSigned:
    """Where the local CA and the current leaf live, and whether this call issued a new leaf."""

    ca: Path
    chain: Path
    key: Path
    names: tuple[str, ...]
    issued: bool


def ensure_self_signed(
    certs_dir: Path,
    names: Sequence[str],
    *,
    loopback: bool = False,
    hostname: str | None = None,
    now: dt.datetime | None = None,
) -> SelfSigned:
    """Make sure a valid local-CA leaf for exactly ``names`` exists in ``certs_dir``; issue one if not.

    ``names`` are the hosted names (domains and their service names such as ``conference.``); IP
    literals become IP SANs. ``loopback`` adds localhost, 127.0.0.1 and ::1. ``hostname`` goes into
    the CA's name (default: this machine's). Blocking (file IO, key generation): call it from a thread
    when on the event loop.
    """
    wanted = _normalise(names, loopback=loopback)
    now = now or dt.datetime.now(dt.UTC)
    certs_dir.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
    ca_cert_path, ca_key_path = certs_dir / "ca.pem", certs_dir / "ca.key"
    stem = _file_stem(wanted[0])
    chain_path, key_path = certs_dir / f"{stem}.pem", certs_dir / f"{stem}.key"

    ca = _load_ca(ca_cert_path, ca_key_path)
    replace = _ca_problem(ca[0], wanted, now=now) if ca is not None else None
    if ca is None or replace is not None:
        ca = _new_ca(hostname or socket.gethostname() or "localhost", wanted, now=now)
        _write(ca_key_path, _key_pem(ca[1]), _KEY_MODE)
        _write(ca_cert_path, ca[0].public_bytes(serialization.Encoding.PEM), _CERT_MODE)
        if replace is None:
            log.info("Created local certificate authority %s", ca_cert_path)
        else:
            log.warning("Replaced the local certificate authority %s: %s. Devices that trusted the old one "
                        "must now trust the new %s instead (and can remove the old one).",
                        ca_cert_path, replace, ca_cert_path)
    ca_cert, ca_key = ca

    reason = _leaf_problem(chain_path, key_path, ca_cert, wanted, now=now)
    if reason is None:
        return SelfSigned(ca_cert_path, chain_path, key_path, wanted, issued=False)
    leaf, leaf_key = _new_leaf(ca_cert, ca_key, wanted, now=now)
    # Key first: a crash between the two writes leaves a mismatch that the next start repairs.
    _write(key_path, _key_pem(leaf_key), _KEY_MODE)
    pem = serialization.Encoding.PEM
    _write(chain_path, leaf.public_bytes(pem) + ca_cert.public_bytes(pem), _CERT_MODE)
    log.info("Issued local certificate %s for %s (%s)", chain_path, ", ".join(wanted), reason)
    return SelfSigned(ca_cert_path, chain_path, key_path, wanted, issued=True)


def san_names(cert: x509.Certificate) -> tuple[str, ...]:
    """DNS names (lower case, A-labels) then IP addresses of a certificate's subjectAltName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    dns = [name.lower() for name in san.get_values_for_type(x509.DNSName)]
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return (*dns, *ips)


def _normalise(names: Sequence[str], *, loopback: bool) -> tuple[str, ...]:
    out: list[str] = []
    for raw in (*names, *(LOOPBACK_NAMES if loopback else ())):
        name = _canonical(raw)
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError("A certificate needs at least one name")
    return tuple(out)


def _canonical(raw: str) -> str:
    name = raw.strip().rstrip(".")
    ip = _as_ip(name)
    if ip is not None:
        return str(ip)
    if not name:
        raise ValueError(f"Not a host name: {raw!r}")
    # Certificates carry A-labels. The stdlib codec is IDNA 2003; it agrees with IDNA 2008 for
    # the names that precis/UTS-46 preparation lets through except a few rare characters.
    return name.lower() if name.isascii() else name.encode("idna").decode("ascii").lower()


def _as_ip(name: str) -> _IP | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def _file_stem(name: str) -> str:
    stem = re.sub(r"[^a-z0-9.-]", "_", name).strip(".") or "_"
    return f"{stem}_" if stem == "ca" else stem


def _load_ca(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    """The existing CA, or None when neither of its files exists (a first start).

    Raises LocalCaError when the files are there but unusable: making a new CA silently would leave
    every device that trusted the old ``ca.pem`` with certificate errors, and hide a damaged disk.
    """
    present = [p for p in (cert_path, key_path) if p.exists()]
    if not present:
        return None
    fix = (f"Restore {cert_path.name} and {key_path.name} from a backup; or, to make a new local CA, move both "
           f"out of {cert_path.parent} and start again (every device that trusted the old {cert_path.name} "
           f"must then trust the new one).")
    for path in (cert_path, key_path):
        if path not in present:
            raise LocalCaError(f"The local CA is incomplete: {path} is missing. {fix}")
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise LocalCaError(f"The local CA certificate {cert_path} cannot be read ({exc}). {fix}") from None
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise LocalCaError(f"The local CA key {key_path} cannot be read ({exc}). {fix}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or _spki(key.public_key()) != _spki(cert.public_key()):
        raise LocalCaError(f"The local CA key {key_path} does not belong to {cert_path}. {fix}")
    return cert, key


def _ca_problem(ca: x509.Certificate, wanted: tuple[str, ...], *, now: dt.datetime) -> str | None:
    """Why the CA must be replaced (with a warning), or None when it can sign a leaf for `wanted`."""
    if ca.not_valid_after_utc - now <= CA_RENEW_BEFORE:
        return f"it expires {ca.not_valid_after_utc:%Y-%m-%d}"
    try:
        constraints = ca.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return "it was made without name constraints, so it could vouch for any website"
    missing = [n for n in wanted if not _covered(n, constraints.permitted_subtrees or [])]
    return f"it does not cover {', '.join(missing)}" if missing else None


def _covered(name: str, subtrees: list[x509.GeneralName]) -> bool:
    """Whether a permitted subtree of the CA's name constraints allows `name` (a DNS name or an IP)."""
    ip = _as_ip(name)
    for tree in subtrees:
        if ip is None and isinstance(tree, x509.DNSName) and (name == tree.value or name.endswith("." + tree.value)):
            return True
        if ip is not None and isinstance(tree, x509.IPAddress) and ip in tree.value:
            return True
    return False


def _general_name(name: str) -> x509.GeneralName:
    ip = _as_ip(name)
    return x509.IPAddress(ip) if ip is not None else x509.DNSName(name)


def _name_constraints(names: tuple[str, ...]) -> x509.NameConstraints:
    """Permit each hosted name with its subdomains (conference., upload. ... are under their domain) and
    exactly the IP addresses given; with no IP address, exclude them all."""
    dns = sorted({n for n in names if _as_ip(n) is None}, key=len)
    roots: list[str] = []
    for name in dns:
        if not any(name == r or name.endswith("." + r) for r in roots):
            roots.append(name)
    ips = [ipaddress.ip_network(n) for n in names if _as_ip(n) is not None]
    permitted: list[x509.GeneralName] = [x509.DNSName(r) for r in roots]
    permitted += [x509.IPAddress(ip) for ip in ips]
    excluded: list[x509.GeneralName] | None = None
    if not ips:
        excluded = [x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")), x509.IPAddress(ipaddress.ip_network("::/0"))]
    return x509.NameConstraints(permitted_subtrees=permitted or None, excluded_subtrees=excluded)


def _leaf_problem(
    chain_path: Path, key_path: Path, ca: x509.Certificate, wanted: tuple[str, ...], *, now: dt.datetime
) -> str | None:
    """Why the leaf must be (re-)issued, or None when it is fine as it is."""
    try:
        leaf = x509.load_pem_x509_certificates(chain_path.read_bytes())[0]
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except FileNotFoundError:
        return "new"
    except (OSError, ValueError, TypeError) as exc:
        return f"unreadable: {exc}"
    if _spki(key.public_key()) != _spki(leaf.public_key()):
        return "key does not match"
    if set(san_names(leaf)) != set(wanted):
        return "names changed"
    if leaf.not_valid_after_utc - now <= RENEW_BEFORE:
        return "expires soon"
    try:
        leaf.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return "not issued by the current local CA"
    return None


def _new_ca(
    hostname: str, names: tuple[str, ...], *, now: dt.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Parlour"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Parlour local CA ({hostname})"[:64]),
        ]
    )
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now - _BACKDATE + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(_name_constraints(names), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _new_leaf(
    ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, names: tuple[str, ...], *, now: dt.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    sans = [_general_name(name) for name in names]
    # The subject CN is legacy (clients match SANs); it is limited to 64 characters.
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])] if len(names[0]) <= 64 else [])
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    not_after = min(now - _BACKDATE + LEAF_LIFETIME, ca.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(sans), critical=not subject)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _spki(public: PublicKeyTypes) -> bytes:
    """SubjectPublicKeyInfo bytes, for telling whether a key and a certificate belong together."""
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` atomically with ``data``; the temporary file has ``mode`` from its creation."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_write = write_atomic
