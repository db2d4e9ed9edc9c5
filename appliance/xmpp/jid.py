"""XMPP addresses (RFC 7622): parsing, preparation and comparison.

Localparts use the PRECIS UsernameCaseMapped profile plus the RFC 7622 §3.3.1 exclusions,
resourceparts OpaqueString, and domainparts a UTS-46-style mapping (NFKC, lower case, U-labels)
checked label by label. Every instance holds the prepared form, so ``==`` compares addresses.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from functools import lru_cache

import precis_i18n

__all__ = ["JID", "JIDError"]

MAX_PART_BYTES = 1023
_MAX_LABEL = 63
# Generous bounds on unprepared text (NFC can merge several code points into one); the exact limit
# is checked on the prepared form.
_MAX_RAW_PART_CHARS = 4 * MAX_PART_BYTES
_MAX_INPUT_CHARS = 3 * _MAX_RAW_PART_CHARS + 2

_USERNAME = precis_i18n.get_profile("UsernameCaseMapped")
_OPAQUE = precis_i18n.get_profile("OpaqueString")
_IDENTIFIER = precis_i18n.get_profile("IdentifierClass")

# RFC 7622 §3.3.1: allowed by the PRECIS profile but not in a localpart.
_LOCAL_FORBIDDEN = frozenset("\"&'/:<>@ ")

# Fast paths: for printable ASCII the PRECIS rules reduce to these (no width or NFC change, no
# right-to-left characters, no contextual rules), so skipping precis_i18n gives the same answer.
_ASCII_LOCAL = re.compile(r"[!#-%(-.0-9;=?A-Z\[-~]+")  # printable ASCII minus space and " & ' / : < > @
_ASCII_RESOURCE = re.compile(r"[ -~]+")
_ASCII_DOMAIN = re.compile(r"[A-Za-z0-9.-]+")
_LDH_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_DOTTED_QUAD = re.compile(r"[0-9]+(\.[0-9]+){3}")
# Full stops UTS-46 maps to "." (NFKC already turns U+FF0E and U+FF61 into "." or U+3002).
_IDEOGRAPHIC_FULL_STOP = "\u3002"


class JIDError(ValueError):
    """Text that is not a valid XMPP address (answer with jid-malformed)."""


class JID:
    """An immutable, hashable XMPP address in prepared (canonical) form."""

    __slots__ = ("_bare", "_hash", "domain", "local", "resource")

    local: str | None
    domain: str
    resource: str | None
    _hash: int

    def __init__(self, local: str | None, domain: str, resource: str | None = None) -> None:
        """Prepare and check each part; raises ``JIDError``. ``None`` means the part is absent."""
        _init(
            self,
            None if local is None else prepare_local(local),
            prepare_domain(domain),
            None if resource is None else prepare_resource(resource),
        )

    @classmethod
    def parse(cls, text: str) -> JID:
        """Parse ``[local@]domain[/resource]``; results are memoised."""
        return _parse(text)

    @classmethod
    def make(cls, local: str | None, domain: str, resource: str | None = None) -> JID:
        """Build from separate parts, preparing each one."""
        return cls(local, domain, resource)

    def bare(self) -> JID:
        """This address without its resource."""
        if self.resource is None:
            return self
        bare = self._bare
        if bare is None:  # kept: parsed JIDs are shared, and the router and hooks ask several times a stanza
            bare = _trusted(self.local, self.domain, None)
            object.__setattr__(self, "_bare", bare)
        return bare

    def with_resource(self, resource: str | None) -> JID:
        """This address with ``resource`` (prepared) in place of its own."""
        return _trusted(self.local, self.domain, None if resource is None else prepare_resource(resource))

    def domain_jid(self) -> JID:
        """The domain alone, e.g. the server an account lives on."""
        return _trusted(None, self.domain, None)

    @property
    def is_bare(self) -> bool:
        return self.resource is None

    @property
    def is_full(self) -> bool:
        return self.resource is not None

    def __str__(self) -> str:
        text = self.domain if self.local is None else f"{self.local}@{self.domain}"
        return text if self.resource is None else f"{text}/{self.resource}"

    def __repr__(self) -> str:
        return f"JID({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JID):
            return NotImplemented
        return (
            self._hash == other._hash
            and self.domain == other.domain
            and self.local == other.local
            and self.resource == other.resource
        )

    def __hash__(self) -> int:
        return self._hash

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("JID is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("JID is immutable")

    def __reduce__(self) -> tuple[object, tuple[str | None, str, str | None]]:
        return (_trusted, (self.local, self.domain, self.resource))


def _init(jid: JID, local: str | None, domain: str, resource: str | None) -> None:
    setter = object.__setattr__
    setter(jid, "local", local)
    setter(jid, "domain", domain)
    setter(jid, "resource", resource)
    setter(jid, "_hash", hash((local, domain, resource)))
    setter(jid, "_bare", None)


def _trusted(local: str | None, domain: str, resource: str | None) -> JID:
    """Build from parts that are already prepared (no checks)."""
    jid = object.__new__(JID)
    _init(jid, local, domain, resource)
    return jid


@lru_cache(maxsize=65536)
def _parse(text: str) -> JID:
    if not isinstance(text, str):
        raise JIDError(f"a JID is text, not {type(text).__name__}")
    if len(text) > _MAX_INPUT_CHARS:
        raise JIDError("JID too long")
    # RFC 7622 §3.2: split off the resource at the first "/", then the localpart at the first "@".
    head, slash, resource = text.partition("/")
    local, at, domain = head.partition("@")
    if not at:
        local, domain = "", head
    elif not local:
        raise JIDError("empty localpart")
    if slash and not resource:
        raise JIDError("empty resourcepart")
    return _trusted(
        prepare_local(local) if at else None,
        prepare_domain(domain),
        prepare_resource(resource) if slash else None,
    )


def _check_size(part: str, what: str) -> str:
    """Check a prepared part: 1..1023 bytes of UTF-8."""
    if not part:
        raise JIDError(f"empty {what}")
    if len(part) > MAX_PART_BYTES or (not part.isascii() and len(part.encode("utf-8")) > MAX_PART_BYTES):
        raise JIDError(f"{what} longer than {MAX_PART_BYTES} bytes")
    return part


def _check_raw(part: str, what: str) -> None:
    """Refuse input no preparation could bring within the limits, before any costly work.

    Preparation can shrink text (width mapping, NFC composition), so the real limit applies after it.
    """
    if not part:
        raise JIDError(f"empty {what}")
    if len(part) > _MAX_RAW_PART_CHARS:
        raise JIDError(f"{what} longer than {MAX_PART_BYTES} bytes")


def prepare_local(local: str) -> str:
    """Apply the localpart rules (UsernameCaseMapped and RFC 7622 §3.3.1); raises ``JIDError``."""
    if _ASCII_LOCAL.fullmatch(local):
        return _check_size(local.lower(), "localpart")
    _check_raw(local, "localpart")
    try:
        prepared = _USERNAME.enforce(local)
    except UnicodeError as exc:
        raise JIDError(f"invalid localpart: {exc.reason}") from None
    bad = _LOCAL_FORBIDDEN.intersection(prepared)
    if bad:
        raise JIDError(f"localpart may not contain {''.join(sorted(bad))!r}")
    return _check_size(prepared, "localpart")


def prepare_resource(resource: str) -> str:
    """Apply the resourcepart rules (OpaqueString); raises ``JIDError``."""
    if _ASCII_RESOURCE.fullmatch(resource):
        return _check_size(resource, "resourcepart")
    _check_raw(resource, "resourcepart")
    try:
        prepared = _OPAQUE.enforce(resource)
    except UnicodeError as exc:
        raise JIDError(f"invalid resourcepart: {exc.reason}") from None
    return _check_size(prepared, "resourcepart")


@lru_cache(maxsize=1024)
def prepare_domain(domain: str) -> str:
    """Map a domainpart to its canonical form: lower case, U-labels, no trailing dot, IP literals
    normalised; raises ``JIDError``. Memoised: a server sees the same few domains all the time."""
    _check_raw(domain, "domainpart")
    if domain.startswith("["):
        return _ipv6_literal(domain)
    if _ASCII_DOMAIN.fullmatch(domain):
        name = domain.lower()
    else:
        name = unicodedata.normalize("NFKC", domain)
        name = unicodedata.normalize("NFC", name.lower()).replace(_IDEOGRAPHIC_FULL_STOP, ".")
    if name.endswith("."):
        name = name[:-1]
    if _DOTTED_QUAD.fullmatch(name):
        return _ipv4(name)
    labels = [_prepare_label(label) for label in name.split(".")]
    return _check_size(".".join(labels), "domainpart")


def _ipv6_literal(domain: str) -> str:
    if not domain.endswith("]") or "%" in domain:
        raise JIDError("malformed IPv6 literal")
    try:
        address = ipaddress.IPv6Address(domain[1:-1])
    except ValueError:
        raise JIDError("malformed IPv6 literal") from None
    return f"[{address.compressed}]"


def _ipv4(name: str) -> str:
    try:
        return str(ipaddress.IPv4Address(name))
    except ValueError:
        raise JIDError("malformed IPv4 address") from None


def _prepare_label(label: str) -> str:
    """Check one lower-cased DNS label; A-labels come back as U-labels (RFC 7622 §3.2.1)."""
    if not label:
        raise JIDError("empty label in domainpart")
    if label.isascii():
        if not _LDH_LABEL.fullmatch(label) or len(label) > _MAX_LABEL:
            raise JIDError(f"invalid domain label {label!r}")
        return _u_label(_decode_a_label(label)) if label.startswith("xn--") else label
    return _u_label(label)


def _decode_a_label(label: str) -> str:
    try:
        decoded = label[4:].encode("ascii").decode("punycode")
    except UnicodeError:
        raise JIDError(f"invalid A-label {label!r}") from None
    if decoded.isascii() or decoded != unicodedata.normalize("NFC", decoded.lower()):
        raise JIDError(f"invalid A-label {label!r}")
    return decoded


def _u_label(label: str) -> str:
    """Check a non-ASCII label: letters and digits only (the IDNA2008 core), hyphen rules, length."""
    if label.startswith("-") or label.endswith("-") or label[2:4] == "--":
        raise JIDError(f"invalid domain label {label!r}")
    if any(ch.isascii() and not (ch.isalnum() or ch == "-") for ch in label):
        raise JIDError(f"invalid domain label {label!r}")
    try:
        _IDENTIFIER.enforce(label)
    except UnicodeError as exc:
        raise JIDError(f"invalid domain label {label!r}: {exc.reason}") from None
    if len(label.encode("punycode")) + 4 > _MAX_LABEL:
        raise JIDError(f"domain label {label!r} longer than {_MAX_LABEL} octets as an A-label")
    return label
