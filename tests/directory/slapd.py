"""A real OpenLDAP server (Debian's slapd) for the tests: started in a temporary folder on a loopback port,
with a test CA for StartTLS and LDAPS, a small schema with Active Directory's attribute names, the
memberof overlay, and a test directory of users, groups and nested groups (one user with a photo)."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.harness import free_port

SLAPD = Path("/usr/sbin/slapd")
LDAPADD = shutil.which("ldapadd")
SCHEMA = Path("/etc/ldap/schema")
BASE = "dc=example,dc=test"
ROOT_DN = f"cn=admin,{BASE}"
ROOT_PASSWORD = "root-secret"
SERVICE_DN = f"cn=parlour,ou=services,{BASE}"
SERVICE_PASSWORD = "service secret"
PEOPLE = f"ou=people,{BASE}"
GROUPS = f"ou=groups,{BASE}"
PASSWORDS = {"alice": "alice in ldap", "bob": "bob in ldap", "carol": "carol in ldap", "dave": "dave in ldap",
             "erin": "erin in ldap"}
# A tiny JPEG header is enough: Parlour copies the bytes, it does not decode them.
PHOTO = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")

# Active Directory's attribute names with their real OIDs, so filters written for AD run unchanged.
AD_SCHEMA = """
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
    EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName'
    EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.99999.1.1 NAME 'adAccount' SUP top AUXILIARY
    MAY ( sAMAccountName $ userPrincipalName ) )
"""


def _user(uid: str, given: str, family: str, *, phone: str = "", photo: bool = False) -> str:
    lines = [
        f"dn: uid={uid},{PEOPLE}", "objectClass: inetOrgPerson", "objectClass: adAccount", f"uid: {uid}",
        f"cn: {given} {family}", f"givenName: {given}", f"sn: {family}", f"mail: {uid}@example.test",
        f"sAMAccountName: {uid.upper()}", f"userPrincipalName: {uid}@corp.example.test",
        f"userPassword: {PASSWORDS[uid]}",
    ]
    if phone:
        lines.append(f"telephoneNumber: {phone}")
    if photo:
        import base64

        lines.append(f"jpegPhoto:: {base64.b64encode(PHOTO).decode()}")
    return "\n".join(lines)


def _group(cn: str, *members: str) -> str:
    return "\n".join([f"dn: cn={cn},{GROUPS}", "objectClass: groupOfNames", f"cn: {cn}",
                      *(f"member: {m}" for m in members)])


def directory_ldif() -> str:
    """The test directory: five people, a service account, and groups two levels deep."""
    entries = [
        f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups",
        f"dn: ou=services,{BASE}\nobjectClass: organizationalUnit\nou: services",
        f"dn: {SERVICE_DN}\nobjectClass: person\ncn: parlour\nsn: service\nuserPassword: {SERVICE_PASSWORD}",
        _user("alice", "Alice", "Liddell", phone="+1 555 0100", photo=True),
        _user("bob", "Bob", "Builder"),
        _user("carol", "Carol", "Danvers"),
        _user("dave", "Dave", "Grohl"),
        _user("erin", "Erin", "Brockovich"),
        _group("backend", f"uid=bob,{PEOPLE}"),
        _group("engineering", f"uid=alice,{PEOPLE}", f"cn=backend,{GROUPS}"),
        _group("sales", f"uid=carol,{PEOPLE}"),
        _group("staff", f"cn=engineering,{GROUPS}", f"cn=sales,{GROUPS}"),  # nested two levels
        _group("loop", f"cn=loop,{GROUPS}", f"uid=dave,{PEOPLE}"),  # a group inside itself must not hang
    ]
    return "\n\n".join(entries) + "\n"


@dataclass(frozen=True, slots=True)
class TestCa:
    """A CA and a server certificate for 127.0.0.1 and ldap.example.test (not "localhost"), as PEM files."""

    ca: Path
    cert: Path
    key: Path


def make_ca(folder: Path, names: tuple[str, ...] = ("ldap.example.test",),
            ips: tuple[str, ...] = ("127.0.0.1",)) -> TestCa:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Parlour test directory CA {folder.name}")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else ips[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    out = TestCa(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    out.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return out


@dataclass(slots=True)
class Slapd:
    """A running slapd: ldap:// (StartTLS offered) and ldaps:// ports on 127.0.0.1."""

    folder: Path
    ca: TestCa
    port: int
    tls_port: int
    process: subprocess.Popen[bytes]

    @property
    def uri(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_uri(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    def ldapmodify(self, ldif: str) -> None:
        """Change the directory as an administrator would (ldapmodify from ldap-utils)."""
        ldapmodify = shutil.which("ldapmodify")
        assert ldapmodify is not None
        subprocess.run([ldapmodify, "-x", "-H", self.uri, "-D", ROOT_DN, "-w", ROOT_PASSWORD],
                       input=ldif.encode(), check=True, capture_output=True, timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"slapd exited with {process.returncode}: {log.read_text(errors='replace')[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"slapd did not listen on {port}: {log.read_text(errors='replace')[-2000:]}")


def start_slapd(folder: Path) -> Slapd:
    """Configure, start and fill a slapd in `folder`."""
    assert LDAPADD is not None, "ldapadd (ldap-utils) is missing"
    folder.mkdir(parents=True, exist_ok=True)
    ca = make_ca(folder / "tls")
    (folder / "db").mkdir(exist_ok=True)
    (folder / "ad.schema").write_text(AD_SCHEMA)
    conf = folder / "slapd.conf"
    conf.write_text("\n".join([
        *(f"include {SCHEMA / name}.schema" for name in ("core", "cosine", "inetorgperson")),
        f"include {folder / 'ad.schema'}",
        f"pidfile {folder / 'slapd.pid'}",
        "modulepath /usr/lib/ldap",
        "moduleload back_mdb",
        "moduleload memberof",
        f"TLSCACertificateFile {ca.ca}",
        f"TLSCertificateFile {ca.cert}",
        f"TLSCertificateKeyFile {ca.key}",
        "database mdb",
        "maxsize 16777216",
        f'suffix "{BASE}"',
        f'rootdn "{ROOT_DN}"',
        f"rootpw {ROOT_PASSWORD}",
        f"directory {folder / 'db'}",
        "overlay memberof",
        "access to attrs=userPassword by anonymous auth by self read by * none",
        # Anonymous users see nothing: a test of a refused service bind cannot pass by reading anonymously.
        "access to * by users read by * none",
        "",
    ]))
    port, tls_port = free_port(), free_port()
    log = folder / "slapd.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(SLAPD), "-f", str(conf), "-h", f"ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/",
             "-d", "0"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    server = Slapd(folder, ca, port, tls_port, process)
    try:
        _wait_for_port(port, process, log)
        subprocess.run([LDAPADD, "-x", "-H", server.uri, "-D", ROOT_DN, "-w", ROOT_PASSWORD],
                       input=directory_ldif().encode(), check=True, capture_output=True, timeout=30)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """One running slapd per test run (import this fixture into a test module or conftest to use it)."""
    if not SLAPD.exists() or LDAPADD is None:
        pytest.skip("needs Debian's slapd and ldap-utils (apt-get install slapd ldap-utils; .ci/run does)")
    server = start_slapd(tmp_path_factory.mktemp("slapd"))
    try:
        yield server
    finally:
        server.stop()
