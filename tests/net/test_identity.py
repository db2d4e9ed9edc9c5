"""RFC 6125 identity matching for XMPP servers (net/identity.py) on real certificates from a test CA:
DNS-ID, SRV-ID and XmppAddr, wildcards, IDNA, and the common name only without a subjectAltName."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from appliance.net.identity import names_domain
from tests.integration.prosody_peer import FederationCA, srv_id, xmpp_addr


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> FederationCA:
    return FederationCA(tmp_path_factory.mktemp("ca"))


def cert(ca: FederationCA, *names: x509.GeneralName, cn: str = "cn.example.org") -> x509.Certificate:
    issued = ca.issue(cn, names=list(names))
    return x509.load_pem_x509_certificate(Path(issued.cert).read_bytes())


@pytest.mark.parametrize(("presented", "reference", "expected"), [
    ("example.org", "example.org", True),
    ("EXAMPLE.org", "example.ORG.", True),
    ("example.org", "other.org", False),
    ("*.example.org", "chat.example.org", True),
    ("*.example.org", "example.org", False),  # a wildcard stands for exactly one label
    ("*.example.org", "a.chat.example.org", False),
    ("*.org", "example.org", False),  # not directly under a top-level domain
    ("ch*.example.org", "chat.example.org", False),  # partial wildcards are not honoured
    ("chat.*.org", "chat.example.org", False),  # the left-most label only
    ("xn--mnchen-3ya.example", "münchen.example", True),  # IDNA: compared as A-labels
])
def test_dns_id(ca: FederationCA, presented: str, reference: str, expected: bool) -> None:
    assert names_domain(cert(ca, x509.DNSName(presented)), reference) is expected


@pytest.mark.parametrize(("presented", "reference", "expected"), [
    ("example.org", "example.org", True),
    ("münchen.example", "xn--mnchen-3ya.example", True),  # UTF-8 in the certificate, A-label asked
    ("münchen.example", "MÜNCHEN.example", True),
    ("*.example.org", "chat.example.org", False),  # never a wildcard in an XmppAddr
    ("juliet@example.org", "example.org", False),  # a server's XmppAddr is its bare domain
    ("other.org", "example.org", False),
])
def test_xmpp_addr(ca: FederationCA, presented: str, reference: str, expected: bool) -> None:
    assert names_domain(cert(ca, xmpp_addr(presented)), reference) is expected


@pytest.mark.parametrize(("presented", "reference", "expected"), [
    ("_xmpp-server.example.org", "example.org", True),
    ("_xmpps-server.example.org", "example.org", True),  # XEP-0368 direct TLS
    ("_xmpp-server.*.example.org", "chat.example.org", True),  # the name part follows DNS-ID rules
    ("_xmpp-client.example.org", "example.org", False),  # a client service does not name a server
    ("_imap.example.org", "example.org", False),
    ("_xmpp-server.other.org", "example.org", False),
])
def test_srv_id(ca: FederationCA, presented: str, reference: str, expected: bool) -> None:
    assert names_domain(cert(ca, srv_id(presented)), reference) is expected


def test_common_name_only_without_subject_alt_names(ca: FederationCA) -> None:
    assert names_domain(cert(ca, cn="example.org"), "example.org")  # no subjectAltName: the CN counts
    # any subjectAltName, even of another kind: the CN is never looked at
    assert not names_domain(cert(ca, xmpp_addr("other.org"), cn="example.org"), "example.org")
    assert not names_domain(cert(ca, x509.DNSName("other.org"), cn="example.org"), "example.org")


def test_any_of_several_identifiers(ca: FederationCA) -> None:
    both = cert(ca, x509.DNSName("one.example"), srv_id("_xmpp-server.two.example"), xmpp_addr("three.example"))
    assert all(names_domain(both, name) for name in ("one.example", "two.example", "three.example"))
    assert not names_domain(both, "four.example")
