"""A test CA with a real OCSP responder (`openssl ocsp`) on loopback, for the stapling tests.

The CA issues a delegated responder certificate (id-kp-OCSPSigning) and server certificates whose
Authority Information Access points at the responder; its index.txt (OpenSSL's CA database, which
`openssl ocsp` re-reads when it changes) says which serials are valid or revoked.
"""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from tests.local_server import end, launch

DAY = dt.timedelta(days=1)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OcspCa:
    """The CA's files in `folder`; `issue()` writes a server certificate, `start()` runs the responder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        now = dt.datetime.now(dt.UTC)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (x509.CertificateBuilder().subject_name(_name("Parlour Test OCSP CA")).issuer_name(
            _name("Parlour Test OCSP CA")).public_key(self.key.public_key()).serial_number(1)
            .not_valid_before(now - DAY).not_valid_after(now + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256()))
        self.ca_pem = folder / "ca.pem"
        self.ca_pem.write_bytes(_pem(self.cert))
        rkey = ec.generate_private_key(ec.SECP256R1())
        rsigner = (x509.CertificateBuilder().subject_name(_name("Parlour Test OCSP responder"))
                   .issuer_name(self.cert.subject).public_key(rkey.public_key()).serial_number(2)
                   .not_valid_before(now - DAY).not_valid_after(now + 30 * DAY)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
                   .sign(self.key, hashes.SHA256()))
        (folder / "rsigner.pem").write_bytes(_pem(rsigner))
        (folder / "rkey.pem").write_bytes(_key_pem(rkey))
        self.index = folder / "index.txt"
        self.index.write_text("")
        (folder / "index.txt.attr").write_text("unique_subject = no\n")  # a renewal reuses the subject
        self._serial = 100
        self._rows: dict[int, str] = {}
        self.process: subprocess.Popen[bytes] | None = None

    def issue(self, names: list[str], out: Path, *, ocsp: bool = True) -> tuple[Path, Path, int]:
        """A server certificate for `names` (chain with the CA, and key) in `out`; listed valid. Returns
        (chain, key, serial)."""
        out.mkdir(parents=True, exist_ok=True)
        self._serial += 1
        now = dt.datetime.now(dt.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(_name(names[0])).issuer_name(self.cert.subject)
                   .public_key(key.public_key()).serial_number(self._serial)
                   .not_valid_before(now - DAY).not_valid_after(now + 20 * DAY)
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                                  critical=False))
        if ocsp:
            builder = builder.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(self.url))]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        chain, key_path = out / "fullchain.pem", out / "privkey.pem"
        chain.write_bytes(_pem(cert, self.cert))
        key_path.write_bytes(_key_pem(key))
        key_path.chmod(0o600)
        self._rows[self._serial] = f"V\t{_asn1_time(now + 20 * DAY)}\t\t{self._serial:X}\tunknown\t/CN={names[0]}"
        self._write_index()
        return chain, key_path, self._serial

    def revoke(self, serial: int) -> None:
        fields = self._rows[serial].split("\t")
        fields[0], fields[2] = "R", _asn1_time(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
        self._rows[serial] = "\t".join(fields)
        self._write_index()

    def _write_index(self) -> None:
        self.index.write_text("".join(row + "\n" for row in self._rows.values()))

    def start(self) -> None:
        """`openssl ocsp` as the responder, signing with the delegated certificate (valid 10 minutes). OpenSSL
        3.0 takes a bare port (it listens on every address; the certificates name 127.0.0.1)."""
        self.process = launch(
            ["openssl", "ocsp", "-index", "index.txt", "-port", str(self.port), "-rsigner", "rsigner.pem",
             "-rkey", "rkey.pem", "-CA", "ca.pem", "-nmin", "10", "-ignore_err"],
            self.folder, "ocsp.log", self._answers, "openssl ocsp")

    def stop(self) -> None:
        end(self.process, timeout=5)
        self.process = None

    def _answers(self) -> bool:
        # Its log says when it listens: a probing connection would hang the one-at-a-time responder.
        return b"ACCEPT" in (self.folder / "ocsp.log").read_bytes()


def _asn1_time(when: dt.datetime) -> str:
    return when.strftime("%y%m%d%H%M%SZ")
