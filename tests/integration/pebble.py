"""A real Pebble ACME server (Debian's `pebble` package) on loopback, with pebble-challtestsrv as its DNS.

Follows RECIPES §7: Pebble's own HTTPS listener gets a certificate made here; the fake DNS answers only
the names a test adds (so an unknown name really does not resolve); validation goes to the ports the
test picks, which is where Parlour listens.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.harness import free_port

PEBBLE = shutil.which("pebble")
CHALLTESTSRV = shutil.which("pebble-challtestsrv")
MISSING = "pebble is not installed (apt-get install pebble): the ACME end-to-end tests need a real ACME server"


@dataclass
class Pebble:
    directory: str
    listener_ca: Path  # trust for Pebble's own HTTPS (acme.ca_bundle)
    management: int
    dns: str  # "127.0.0.1:port" for acme.nameservers
    dns_management: int
    log: Path

    def _get(self, path: str) -> bytes:
        ctx = ssl.create_default_context(cafile=str(self.listener_ca))
        with urllib.request.urlopen(f"https://127.0.0.1:{self.management}{path}", context=ctx, timeout=10) as r:
            return r.read()

    def roots_pem(self) -> bytes:
        """Pebble's issuing root and intermediate (new at every start), for verifying issued chains."""
        return self._get("/roots/0") + self._get("/intermediates/0")

    def add_a(self, name: str, address: str = "127.0.0.1") -> None:
        """Answer A queries for ``name`` with ``address`` too (challtestsrv adds to earlier answers)."""
        self._dns("add-a", {"host": name.rstrip(".") + ".", "addresses": [address]})

    def move_a(self, name: str, address: str) -> None:
        """Answer A queries for ``name`` with ``address`` only (the name moved to another machine)."""
        self._dns("clear-a", {"host": name.rstrip(".") + "."})
        self.add_a(name, address)

    def _dns(self, action: str, data: dict[str, object]) -> None:
        request = urllib.request.Request(f"http://127.0.0.1:{self.dns_management}/{action}",
                                         data=json.dumps(data).encode(), method="POST")
        urllib.request.urlopen(request, timeout=10).read()


def _listener_certificate(folder: Path) -> tuple[Path, Path, Path]:
    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble test listener CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    paths = folder / "ca.pem", folder / "pebble.pem", folder / "pebble.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(leaf.public_bytes(pem))
    paths[2].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


@contextlib.contextmanager
def run_pebble(folder: Path, *, http_port: int, tls_port: int, validity: int | None = None,
               blocklist: tuple[str, ...] = (), again: Pebble | None = None) -> Iterator[Pebble]:
    """Start challtestsrv and Pebble validating HTTP-01 on ``http_port`` and TLS-ALPN-01 on ``tls_port``.

    ``validity``: lifetime of issued certificates in seconds (Pebble's default is 5 years);
    ``blocklist``: names Pebble refuses (rejectedIdentifier); ``again``: an earlier Pebble whose
    addresses to take over (the same CA restarted: it forgot its accounts and DNS records).
    """
    assert PEBBLE and CHALLTESTSRV, MISSING
    folder.mkdir(parents=True, exist_ok=True)
    ca, cert, key = _listener_certificate(folder)
    if again is not None:
        acme_port, management = int(again.directory.split(":")[2].split("/")[0]), again.management
        dns, dns_management = int(again.dns.rpartition(":")[2]), again.dns_management
    else:
        acme_port, management, dns, dns_management = free_port(), free_port(), free_port(), free_port()
    config = folder / "pebble-config.json"
    extra: dict[str, object] = {"domainBlocklist": list(blocklist)}
    if validity is not None:
        extra["certificateValidityPeriod"] = validity
    config.write_text(json.dumps({"pebble": {**extra,
        "listenAddress": f"127.0.0.1:{acme_port}", "managementListenAddress": f"127.0.0.1:{management}",
        "certificate": str(cert), "privateKey": str(key), "httpPort": http_port, "tlsPort": tls_port,
        "ocspResponderURL": "", "externalAccountBindingRequired": False}}))
    log = folder / "pebble.log"
    env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
    with open(folder / "challtestsrv.log", "wb") as dns_log, open(log, "wb") as pebble_log:
        dns_proc = subprocess.Popen(
            [CHALLTESTSRV, "-defaultIPv4", "", "-defaultIPv6", "", "-dns01", f"127.0.0.1:{dns}", "-http01", "",
             "-https01", "", "-tlsalpn01", "", "-management", f"127.0.0.1:{dns_management}"],
            stdout=dns_log, stderr=subprocess.STDOUT)
        proc = subprocess.Popen([PEBBLE, "-config", str(config), "-dnsserver", f"127.0.0.1:{dns}", "-strict=false"],
                                stdout=pebble_log, stderr=subprocess.STDOUT, env=env)
        try:
            pebble = Pebble(f"https://127.0.0.1:{acme_port}/dir", ca, management, f"127.0.0.1:{dns}",
                            dns_management, log)
            _wait_ready(pebble)
            yield pebble
        finally:
            for p in (proc, dns_proc):
                p.terminate()
            for p in (proc, dns_proc):
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()


def _wait_ready(pebble: Pebble) -> None:
    ctx = ssl.create_default_context(cafile=str(pebble.listener_ca))
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(pebble.directory, context=ctx, timeout=2).read()
            urllib.request.urlopen(f"http://127.0.0.1:{pebble.dns_management}/", timeout=2)
            return
        except urllib.error.HTTPError:
            return  # challtestsrv answers 404 on "/": it is up
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Pebble did not start; see {pebble.log}") from None
            time.sleep(0.1)
