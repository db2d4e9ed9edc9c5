"""A real Prosody (Debian's package) as a federation peer, in a network namespace of its own.

The namespace has its own address on a veth pair (10.231.N.2, the test process side is 10.231.N.1), so
Prosody listens on 5269 like any server without taking a port of the machine, and its own resolv.conf
(/etc/netns/<ns>/resolv.conf) pointing at a DNS server the test runs on 10.231.N.1:53: Prosody finds
Parlour through real SRV and A records. Each peer gets its config, data and certificates under a temp
directory and is stopped by PID. `unavailable()` says why the tests must skip (no prosody, no root, no
`ip netns`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.net.identity import ID_ON_DNSSRV, ID_ON_XMPPADDR

PROSODY = shutil.which("prosody")


def unavailable() -> str | None:
    """Why Prosody federation tests cannot run here, or None."""
    if PROSODY is None:
        return "Debian's prosody is not installed (apt-get install prosody)"
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (`ip netns`) is not installed"
    probe = f"pprobe{os.getpid() % 100000}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.decode().strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


class Namespace:
    """A network namespace joined to this one by a veth pair: we are .1, the namespace .2."""

    def __init__(self, index: int = 0) -> None:
        """`index` (0-9) tells apart several namespaces of one test process."""
        tag = f"{os.getpid() % 100000}{index}"
        self.name = f"pp{tag}"
        self.outer_if, self.inner_if = f"vp{tag}a", f"vp{tag}b"
        subnet = 10 + os.getpid() % 240
        self.outer, self.inner = f"10.{231 + index}.{subnet}.1", f"10.{231 + index}.{subnet}.2"
        self.etc = Path("/etc/netns") / self.name

    def __enter__(self) -> Namespace:
        self.close()  # a run killed before cleaning up left these behind
        run = _run
        run("ip", "netns", "add", self.name)
        run("ip", "link", "add", self.outer_if, "type", "veth", "peer", "name", self.inner_if)
        run("ip", "link", "set", self.inner_if, "netns", self.name)
        run("ip", "addr", "add", f"{self.outer}/24", "dev", self.outer_if)
        run("ip", "link", "set", self.outer_if, "up")
        run("ip", "-n", self.name, "addr", "add", f"{self.inner}/24", "dev", self.inner_if)
        run("ip", "-n", self.name, "link", "set", self.inner_if, "up")
        run("ip", "-n", self.name, "link", "set", "lo", "up")
        self.etc.mkdir(parents=True, exist_ok=True)
        (self.etc / "resolv.conf").write_text(f"nameserver {self.outer}\n")
        (self.etc / "hosts").write_text("127.0.0.1 localhost\n")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.outer_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        shutil.rmtree(self.etc, ignore_errors=True)


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


class FederationCA:
    """A throwaway CA issuing serverAuth-only leaf certificates (what public CAs issue today)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Parlour federation test CA")])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = directory / "ca.pem"
        self.pem.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, domain: str, *, client_auth: bool = False,
              names: Sequence[x509.GeneralName] | None = None) -> Issued:
        """A leaf for `domain`; `client_auth` adds clientAuth to serverAuth (ejabberd 23.01 checks the
        certificate of an incoming SASL EXTERNAL for the TLS client purpose); `names`: the subjectAltName's
        identifiers instead of the DNS-ID `domain` (an empty list: no subjectAltName, the CN alone)."""
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client_auth else [])
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)]))
            .issuer_name(self.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if names is None or names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names or [x509.DNSName(domain)]),
                                            critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        stem = domain if names is None else f"{domain}-{cert.serial_number:x}"
        issued = Issued(self.dir / f"{stem}.crt", self.dir / f"{stem}.key")
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
        return issued


def xmpp_addr(domain: str) -> x509.OtherName:
    """An XmppAddr identifier (RFC 6120 §13.7.1.4): id-on-xmppAddr, a DER UTF8String."""
    return x509.OtherName(ID_ON_XMPPADDR, _der(0x0C, domain.encode()))


def srv_id(name: str) -> x509.OtherName:
    """An SRV-ID (RFC 4985) like `_xmpp-server.example.org`: id-on-dnsSRV, a DER IA5String."""
    return x509.OtherName(ID_ON_DNSSRV, _der(0x16, name.encode("ascii")))


def _der(tag: int, value: bytes) -> bytes:
    assert len(value) < 128  # short-form length is all these names need
    return bytes((tag, len(value))) + value


CONFIG = """\
pidfile = "{base}/prosody.pid"
data_path = "{base}/data"
daemonize = false
run_as_root = true
log = {{ {log_level} = "{base}/prosody.log" }}
network_backend = "epoll"
interfaces = {{ "{address}" }}
c2s_ports = {{ 5222 }}
c2s_direct_tls_ports = {{}}
s2s_ports = {{ 5269 }}
s2s_direct_tls_ports = {{}}
http_ports = {{}}
https_ports = {{}}
component_ports = {{}}
admin_socket = "{base}/admin.sock"
certificates = "{base}/certs"
ssl = {{ cafile = "{cafile}" }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
s2s_require_encryption = true
s2s_secure_auth = {secure_auth}
authentication = "internal_plain"
storage = "internal"
modules_enabled = {{
    "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "offline"; "s2s_auth_certs";{bidi}{services_modules}
}}
VirtualHost "{domain}"
{components}"""

# With `services=True`: what the cross-server feature tests talk to, on the account host and on components
SERVICES_MODULES = ' "pep"; "vcard"; "version"; "lastactivity"; "blocklist"; "carbons"; "uptime";'
COMPONENTS = """\
Component "rooms.{domain}" "muc"
Component "pubsub.{domain}" "pubsub"
    admins = {{ "mercutio@{domain}" }} -- creates the nodes of the tests
"""


class ProsodyPeer:
    """One Prosody serving `domain` inside namespace `ns`; `await start()`, `await stop()`."""

    def __init__(self, base: Path, ns: Namespace, domain: str, *, certificate: Issued, cafile: Path,
                 secure_auth: bool = False, users: dict[str, str] | None = None, log_level: str = "debug",
                 services: bool = False, bidi: bool = False) -> None:
        """`bidi` loads mod_s2s_bidi (XEP-0288; Prosody 0.12 ships it but loads it only when listed);
        without it Prosody opens a connection of its own for its stanzas to Parlour."""
        self.base = base
        self.ns = ns
        self.domain = domain
        self.certificate = certificate
        self.cafile = cafile
        self.secure_auth = secure_auth
        self.users = users or {}
        self.log_level = log_level
        self.services = services
        self.bidi = bidi
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return self.ns.inner

    def offline_messages(self, user: str) -> str:
        """What Prosody stored for `user` while offline (its internal storage, as text)."""
        path = self.base / "data" / _escape(self.domain) / "offline" / f"{user}.list"
        return path.read_text() if path.exists() else ""

    async def start(self) -> None:
        base = self.base
        (base / "certs").mkdir(parents=True, exist_ok=True)
        shutil.copy(self.certificate.cert, base / "certs" / f"{self.domain}.crt")
        shutil.copy(self.certificate.key, base / "certs" / f"{self.domain}.key")
        accounts = base / "data" / _escape(self.domain) / "accounts"
        accounts.mkdir(parents=True, exist_ok=True)
        for user, password in self.users.items():
            (accounts / f"{user}.dat").write_text(f'return {{ ["password"] = "{password}"; }};\n')
        config = base / "prosody.cfg.lua"
        config.write_text(CONFIG.format(base=base, address=self.address, domain=self.domain, cafile=self.cafile,
                                        log_level=self.log_level, bidi=' "s2s_bidi";' if self.bidi else "",
                                        services_modules=SERVICES_MODULES if self.services else "",
                                        components=COMPONENTS.format(domain=self.domain) if self.services else "",
                                        secure_auth="true" if self.secure_auth else "false"))
        with open(base / "stderr.log", "wb") as stderr:
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", self.ns.name, PROSODY or "prosody", "--config", str(config), "-F"],
                stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
            )
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection(self.address, 5222)
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"prosody exited: {(base / 'stderr.log').read_text()[-2000:]}") from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return
        raise RuntimeError("prosody did not start listening")

    async def stop(self) -> None:
        await stop_group(self.process, grace=5.0)

    def log(self) -> str:
        path = self.base / "prosody.log"
        return path.read_text(errors="replace") if path.exists() else ""


async def stop_group(process: subprocess.Popen[bytes] | None, *, grace: float) -> None:
    """TERM the process group a peer was started in (start_new_session), KILL it after `grace` seconds."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    for _ in range(int(grace / 0.05)):
        if process.poll() is not None:
            return
        await asyncio.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _escape(domain: str) -> str:
    return domain.replace("%", "%25").replace(".", "%2e").replace("-", "%2d")
