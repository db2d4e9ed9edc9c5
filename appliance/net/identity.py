"""Whether a server certificate names an XMPP domain (RFC 6120 §13.7.1.2, RFC 6125 §6).

A certificate presents identifiers in its subjectAltName: DNS-IDs (dNSName), SRV-IDs (the otherName
id-on-dnsSRV, `_xmpp-server.example.org` or `_xmpps-server.example.org`) and XmppAddr (the otherName
id-on-xmppAddr, a UTF-8 domain). The reference identifier is the domain the peer claims (never an SRV
target). Wildcards follow RFC 6125 §6.4.3: a `*` standing for the whole left-most label, one label only,
never in an XmppAddr, never with fewer than two labels after it. Internationalized names are compared as
lower-case A-labels. The subject's common name counts only when the certificate has no subjectAltName
at all (§6.4.4).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

ID_ON_XMPPADDR = ObjectIdentifier("1.3.6.1.5.5.7.8.5")  # RFC 6120 §13.7.1.4
ID_ON_DNSSRV = ObjectIdentifier("1.3.6.1.5.5.7.8.7")  # RFC 4985
SERVICES = ("_xmpp-server", "_xmpps-server")  # RFC 6120 §13.7.1.2.1, XEP-0368


def a_label(name: str) -> str | None:
    """`name` as lower-case A-labels without a trailing dot; None if it is no valid domain name."""
    name = name.rstrip(".")
    if not name:
        return None
    try:
        ascii_name = name if name.isascii() else name.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return ascii_name.lower()


def _der_string(value: bytes) -> str | None:
    """The text of a DER UTF8String or IA5String (the otherName values we read), else None."""
    if len(value) < 2 or value[0] not in (0x0C, 0x16):  # UTF8String, IA5String
        return None
    length, rest = value[1], value[2:]
    if length & 0x80:  # long form: the next (length & 0x7f) bytes hold the length
        count = length & 0x7F
        length, rest = int.from_bytes(rest[:count], "big"), rest[count:]
    if len(rest) != length:
        return None
    try:
        return rest.decode("utf-8")
    except UnicodeDecodeError:
        return None


def dns_id_matches(presented: str, reference: str) -> bool:
    """RFC 6125 §6.4: a DNS-ID (maybe with a left-most wildcard) against a reference A-label name."""
    name = a_label(presented) if presented != "*" else None
    if name is None:
        return False
    if "*" not in name:
        return name == reference
    label, _, parent = name.partition(".")
    # Only a complete left-most label, covering exactly one label, under at least two more labels.
    if label != "*" or "*" in parent or parent.count(".") < 1:
        return False
    first, _, rest = reference.partition(".")
    return bool(first) and rest == parent


def srv_id_matches(presented: str, reference: str) -> bool:
    """RFC 6125 §6.5.1: `_xmpp-server.example.org` (or `_xmpps-server`); the name part as a DNS-ID."""
    service, _, name = presented.partition(".")
    return service.lower() in SERVICES and dns_id_matches(name, reference)


def xmpp_addr_matches(presented: str, reference: str) -> bool:
    """RFC 6120 §13.7.1.4: an XmppAddr naming the bare domain, compared exactly (no wildcards)."""
    return "*" not in presented and "@" not in presented and "/" not in presented and a_label(presented) == reference


def names_domain(cert: x509.Certificate, domain: str) -> bool:
    """Whether `cert` presents an identifier for the XMPP domain `domain`."""
    reference = a_label(domain)
    if reference is None:
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return any(isinstance(cn.value, str) and dns_id_matches(cn.value, reference) for cn in common_names)
    if any(dns_id_matches(name, reference) for name in san.get_values_for_type(x509.DNSName)):
        return True
    for other in san.get_values_for_type(x509.OtherName):
        text = _der_string(other.value)
        if text is None:
            continue
        if other.type_id == ID_ON_XMPPADDR and xmpp_addr_matches(text, reference):
            return True
        if other.type_id == ID_ON_DNSSRV and srv_id_matches(text, reference):
            return True
    return False


__all__ = ["ID_ON_DNSSRV", "ID_ON_XMPPADDR", "a_label", "names_domain"]
