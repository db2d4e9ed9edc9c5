"""The configuration schema: value kinds, and the core's keys with their type, default and one-line doc.

The defaults come from the dataclasses in `model.py`, so the schema and the model cannot disagree
(a test checks that every model field has exactly one key here). Modules declare their own options
beside their code (`options.option`); `options.schema(modules)` adds those tables to the core's.
`load.py` validates against that schema and `docs.py` renders it as the configuration reference.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from appliance.config import model
from appliance.xmpp.jid import JID, JIDError


class Invalid(ValueError):
    """A value does not fit its key; the message says what is allowed ("expected ...")."""


class Kind:
    """A value type: converts a parsed TOML value to the model's type or raises `Invalid`."""

    type_name: str = "value"

    def allowed(self) -> str:
        """What is allowed, phrased to follow "expected"."""
        raise NotImplementedError

    def brief(self) -> str:
        """What is allowed, short, for the reference table."""
        return self.allowed()

    def convert(self, value: object) -> object:
        raise NotImplementedError

    def to_toml(self, value: object) -> str:
        """The model value written back as TOML (for docs and examples)."""
        return toml_literal(value)

    def fail(self) -> Invalid:
        return Invalid(f"expected {self.allowed()}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Int(Kind):
    """An integer within [lo, hi]."""

    lo: int
    hi: int
    type_name = "integer"

    def allowed(self) -> str:
        return f"an integer from {self.lo} to {self.hi}"

    def brief(self) -> str:
        return f"{self.lo} to {self.hi}"

    def convert(self, value: object) -> int:
        if not _is_int(value) or not self.lo <= value <= self.hi:  # type: ignore[operator]
            raise self.fail()
        return value  # type: ignore[return-value]


@dataclass(frozen=True)
class Bool(Kind):
    type_name = "boolean"

    def allowed(self) -> str:
        return "true or false"

    def convert(self, value: object) -> bool:
        if not isinstance(value, bool):
            raise self.fail()
        return value


@dataclass(frozen=True)
class Choice(Kind):
    """One string out of a fixed set."""

    values: tuple[str, ...]
    type_name = "string"

    @classmethod
    def of(cls, literal: object) -> Choice:
        """The choice a `Literal["a", "b"]` type allows, so the type and the check share one list."""
        values = get_args(literal)
        if not values or not all(isinstance(v, str) for v in values):
            raise TypeError(f"{literal!r} is not a Literal of strings")
        return cls(values)

    def allowed(self) -> str:
        quoted = [json.dumps(v) for v in self.values]
        return "one of " + ", ".join(quoted[:-1]) + " or " + quoted[-1]

    def convert(self, value: object) -> str:
        if value not in self.values or not isinstance(value, str):
            raise self.fail()
        return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def format_duration(seconds: float) -> str:
    """Seconds as the largest whole unit: 600 → "10m", 1.5 → "1500ms"."""
    for unit in ("w", "d", "h", "m", "s", "ms"):
        count = seconds / _DURATION_UNITS[unit]
        if count >= 1 and abs(count - round(count)) < 1e-9:
            return f"{round(count)}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class Duration(Kind):
    """Seconds as a number, or a string with a unit: "30s", "10m", "2h", "1d"."""

    lo: float
    hi: float
    type_name = "duration"

    def allowed(self) -> str:
        return (
            'a duration such as 30, "30s", "10m", "2h" or "1d" '
            f"from {format_duration(self.lo) if self.lo else '0'} to {format_duration(self.hi)}"
        )

    def brief(self) -> str:
        return f"{format_duration(self.lo) if self.lo else '0'} to {format_duration(self.hi)}"

    def convert(self, value: object) -> float:
        if _is_number(value):
            seconds = float(value)  # type: ignore[arg-type]
        elif isinstance(value, str) and (match := _DURATION.match(value)):
            seconds = float(match[1]) * _DURATION_UNITS[match[2]]
        else:
            raise self.fail()
        if not self.lo <= seconds <= self.hi:
            raise self.fail()
        return seconds

    def to_toml(self, value: object) -> str:
        return json.dumps(format_duration(value))  # type: ignore[arg-type]


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|kB|KB|MB|GB)\s*$")
_SIZE_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "kB": 1000, "KB": 1000,
               "MB": 1000**2, "GB": 1000**3}


def format_size(size: int) -> str:
    """Bytes as the largest whole binary unit: 262144 → "256KiB"."""
    for unit in ("GiB", "MiB", "KiB"):
        if size and size % _SIZE_UNITS[unit] == 0:
            return f"{size // _SIZE_UNITS[unit]}{unit}"
    return f"{size}B"


@dataclass(frozen=True)
class Size(Kind):
    """Bytes as an integer, or a string with a unit: "256KiB", "10MiB"."""

    lo: int
    hi: int
    type_name = "size"

    def allowed(self) -> str:
        lo, hi = format_size(self.lo), format_size(self.hi)
        return f'a size such as 65536, "64KiB" or "10MiB" from {lo} to {hi}'

    def brief(self) -> str:
        return f"{format_size(self.lo)} to {format_size(self.hi)}"

    def convert(self, value: object) -> int:
        if _is_int(value):
            size = value
        elif isinstance(value, str) and (match := _SIZE.match(value)):
            size = float(match[1]) * _SIZE_UNITS[match[2]]
            if size != int(size):
                raise self.fail()
            size = int(size)
        else:
            raise self.fail()
        if not self.lo <= size <= self.hi:  # type: ignore[operator]
            raise self.fail()
        return size  # type: ignore[return-value]

    def to_toml(self, value: object) -> str:
        return json.dumps(format_size(value))  # type: ignore[arg-type]


@dataclass(frozen=True)
class PathKind(Kind):
    """A file system path; a relative one is resolved by the loader against the config file's folder."""

    optional: bool = False
    type_name = "path"

    def allowed(self) -> str:
        return "a path" + (' (or "" for none)' if self.optional else "")

    def convert(self, value: object) -> Path | None:
        if not isinstance(value, str) or "\0" in value:
            raise self.fail()
        if not value:
            if self.optional:
                return None
            raise self.fail()
        return Path(value).expanduser()

    def to_toml(self, value: object) -> str:
        return json.dumps("" if value is None else str(value))


@dataclass(frozen=True)
class Text(Kind):
    """A string checked by a function that returns the normalized form or raises ValueError."""

    what: str  # "a bare JID like \"admin@example.org\""
    check: Callable[[str], str]
    type_name = "string"

    def allowed(self) -> str:
        return self.what

    def convert(self, value: object) -> str:
        if not isinstance(value, str):
            raise self.fail()
        try:
            return self.check(value)
        except ValueError:
            raise self.fail() from None


@dataclass(frozen=True)
class ListOf(Kind):
    """A list of strings, each checked by `item`; duplicates are refused."""

    item: Text
    min_items: int = 0
    type_name = "list of strings"

    def allowed(self) -> str:
        least = " (at least one)" if self.min_items else ""
        return f"a list of {_plural(self.item.what)}{least}"

    def convert(self, value: object) -> tuple[str, ...]:
        if not isinstance(value, list) or len(value) < self.min_items:
            raise self.fail()
        items = []
        for item in value:
            try:
                items.append(self.item.convert(item))
            except Invalid:
                raise Invalid(f"expected {self.allowed()}; {toml_literal(item, 40)} is not one") from None
        if len(set(items)) != len(items):
            raise Invalid(f"expected {self.allowed()} without duplicates")
        return tuple(items)

    def to_toml(self, value: object) -> str:
        return toml_literal(list(value))  # type: ignore[call-overload]


@dataclass(frozen=True)
class MapOf(Kind):
    """A table of names to strings (`{ "irc.example.org" = "secret" }`), each side checked; kept as
    sorted (name, value) pairs so the model stays frozen."""

    key: Text
    value: Text
    type_name = "table"

    def allowed(self) -> str:
        return f"a table of {_plural(self.key.what)} to {self.value.what} each"

    def convert(self, value: object) -> tuple[tuple[str, str], ...]:
        if not isinstance(value, dict):
            raise self.fail()
        pairs: dict[str, str] = {}
        for name, item in value.items():
            try:
                pairs[self.key.convert(name)] = self.value.convert(item)
            except Invalid:
                raise Invalid(f"expected {self.allowed()}; {toml_key(name)} = {toml_literal(item, 40)} is not "
                              "one") from None
        return tuple(sorted(pairs.items()))

    def to_toml(self, value: object) -> str:
        return toml_literal(dict(value))  # type: ignore[call-overload]


def _plural(what: str) -> str:
    """'a bare JID like "x"' → 'bare JIDs like "x"' (good enough for our own phrases)."""
    head, _, tail = what.partition(" like ")
    head = head.removeprefix("a ").removeprefix("an ")
    head += "es" if head.endswith("s") else "s"
    return f"{head} like {tail}" if tail else head


# --- string checks ---------------------------------------------------------------------------------

def check_domain(text: str) -> str:
    """A DNS domain name (IDNs allowed, no IP address), in the prepared form JIDs use."""
    try:
        jid = JID.parse(text.strip())
    except JIDError:
        raise ValueError(text) from None
    if jid.local is not None or jid.resource is not None or _is_ip(jid.domain.strip("[]")):
        raise ValueError(text)
    return jid.domain


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_bare_jid(text: str) -> str:
    """A bare JID with a local part ("admin@example.org"), in its prepared form."""
    try:
        jid = JID.parse(text.strip())
    except JIDError:
        raise ValueError(text) from None
    if jid.local is None or jid.resource is not None:
        raise ValueError(text)
    check_domain(jid.domain)
    return str(jid)


def check_ip(text: str) -> str:
    """An IPv4 or IPv6 address, in its canonical form."""
    return str(ipaddress.ip_address(text.strip()))


_MODULE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def check_module_name(text: str) -> str:
    if not _MODULE_NAME.match(text):
        raise ValueError(text)
    return text


_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:\S+$")


def check_uri(text: str) -> str:
    if not _URI.match(text):
        raise ValueError(text)
    return text


DOMAIN = Text('a domain name like "example.org"', check_domain)
BARE_JID = Text('a bare JID like "admin@example.org"', check_bare_jid)
IP_ADDRESS = Text('an IP address like "0.0.0.0" or "::1"', check_ip)
MODULE_NAME = Text('a module name like "offline"', check_module_name)
URI = Text('a URI like "mailto:abuse@example.org" or "xmpp:admin@example.org"', check_uri)


# --- the schema ------------------------------------------------------------------------------------

REQUIRED: Any = object()  # default of a key without a model default


@dataclass(frozen=True, slots=True)
class Key:
    """One configuration key."""

    name: str
    kind: Kind
    doc: str
    default: object
    default_doc: str | None = None  # shown instead of the default when it depends on the platform

    def default_toml(self) -> str:
        if self.default_doc is not None:
            return self.default_doc
        return self.kind.to_toml(self.default)


@dataclass(frozen=True, slots=True)
class Table:
    """A TOML table backed by one model dataclass: its keys and nested tables."""

    path: str  # dotted, "c2s" or "modules.offline"; hosts' tables use "hosts.<name>"
    model: type
    doc: str
    keys: tuple[Key, ...]
    tables: tuple[Table, ...] = ()

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    def key(self, name: str) -> Key | None:
        return next((k for k in self.keys if k.name == name), None)

    def table(self, name: str) -> Table | None:
        return next((t for t in self.tables if t.name == name), None)

    def names(self) -> list[str]:
        return [k.name for k in self.keys] + [t.name for t in self.tables]

    def walk(self) -> list[Table]:
        """This table and every nested one, depth first."""
        out = [self]
        for table in self.tables:
            out.extend(table.walk())
        return out


def _key(cls: type, name: str, kind: Kind, doc: str, default_doc: str | None = None) -> Key:
    """A key whose default is read from the model field `cls.name`."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = REQUIRED
            return Key(name, kind, doc, default, default_doc)
    raise AssertionError(f"{cls.__name__} has no field {name!r}")


def _table(path: str, cls: type, doc: str, keys: Sequence[tuple[Any, ...]], tables: Sequence[Table] = ()
           ) -> Table:
    return Table(path, cls, doc, tuple(_key(cls, *k) for k in keys), tuple(tables))


ONE_DAY = 86400.0
PORT = Int(1, 65535)

SERVER = _table("server", model.ServerConfig, "Process-wide settings.", [
    ("state_dir", PathKind(), "Folder for the database, certificates and uploads; relative to the "
     "config file's folder.", "platform default (/var/lib/parlour on Linux)"),
    ("admins", ListOf(BARE_JID), "Accounts allowed into the admin console and admin commands."),
])

C2S = _table("c2s", model.C2SConfig, "Client connections (RFC 6120) and session policy.", [
    ("interfaces", ListOf(IP_ADDRESS, min_items=1), "Addresses to listen on for clients."),
    ("port", PORT, "Port for client connections with STARTTLS."),
    ("direct_tls_port", Int(0, 65535), "Port for direct TLS client connections (XEP-0368); 0 turns "
     "it off."),
    ("require_encryption", Bool(), "Refuse to authenticate clients before TLS."),
    ("allow_plaintext_on_loopback", Bool(), "Allow unencrypted clients from 127.0.0.1/::1 even when "
     "encryption is required (for local tools and tests)."),
    ("resource_conflict", Choice.of(model.ResourceConflict), "When a client binds a resource already in "
     "use: disconnect the old session or refuse the new one."),
    ("max_resources", Int(1, 1000), "Most simultaneous sessions per account."),
    ("legacy_session", Bool(), "Advertise the RFC 3921 session feature as optional, for old clients."),
    ("idle_timeout", Duration(10, ONE_DAY), "Silence before the server pings the client."),
    ("ping_timeout", Duration(1, 3600), "Time to answer that ping before the connection is closed."),
    ("handshake_timeout", Duration(1, 3600), "Time from connecting to a bound resource."),
])

TLS = _table("tls", model.TlsConfig, "Certificates. Leave both empty to use a self-signed certificate "
             "made in the state folder.", [
    ("certificate", PathKind(optional=True), "PEM certificate chain; relative to the config file's "
     "folder."),
    ("private_key", PathKind(optional=True), "PEM private key for that certificate."),
    ("ocsp_stapling", Bool(), "Fetch the certificate's OCSP response from its CA and staple it to TLS "
     "handshakes (c2s and HTTPS), so clients need not ask the CA. Only certificates that name an OCSP "
     "responder get one; self-signed, local-CA and current Let's Encrypt certificates do not."),
])

# --- [components] (external components, XEP-0114) ---
def check_component_secret(text: str) -> str:
    if len(text) < 8 or text != text.strip():
        raise ValueError(text)
    return text


COMPONENTS = _table("components", model.ComponentsConfig, "External components (XEP-0114): gateways and "
                    "bots (an IRC gateway such as biboumi) that connect with a shared secret and serve a domain "
                    "of their own. The listener opens only when a secret is configured.", [
    ("interfaces", ListOf(IP_ADDRESS), "Addresses to listen on for components; keep them on loopback unless "
     "the component runs on another machine of a trusted network (the stream is not encrypted)."),
    ("port", PORT, "Port for component connections."),
    ("secrets", MapOf(DOMAIN, Text("a secret of at least 8 characters", check_component_secret)),
     'Each component\'s domain and shared secret, like { "irc.example.org" = "a long random secret" }. '
     "The domain must not be a host; a component gets every stanza addressed to it or a JID under it."),
])
# --- end [components] ---

# --- [federation] (which other servers we talk to) ---
FEDERATION = _table("federation", model.FederationConfig, "Which other XMPP servers users here may talk to. "
                    "Changes apply without a restart (also from `parlour federation` and the console).", [
    ("enabled", Bool(), "Talk to users of other XMPP servers; off suits a LAN-only office."),
    ("mode", Choice.of(model.FederationMode), 'blocklist: every domain but blocked_domains; allowlist: only '
     "allowed_domains."),
    ("blocked_domains", ListOf(DOMAIN), "Remote domains nothing is sent to or accepted from (their subdomains "
     "too)."),
    ("allowed_domains", ListOf(DOMAIN), "In allowlist mode, the only remote domains (and their subdomains) "
     "users here talk to."),
    ("silent_drop", Bool(), "Drop refused stanzas without an error to the sender (by default the sender's "
     "client is told why)."),
])
# --- end [federation] ---

# --- [http] (web transports) ---
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+$")


def check_origin(text: str) -> str:
    """A web origin: scheme, host and optional port, no path ("https://chat.example.org")."""
    text = text.strip().rstrip("/").lower()
    if not _ORIGIN.match(text):
        raise ValueError(text)
    return text


ORIGIN = Text('an origin like "https://chat.example.org"', check_origin)

HTTP = _table("http", model.HttpConfig, "The web listener: BOSH (XEP-0206) at /http-bind, WebSocket "
              "(RFC 7395) at /xmpp-websocket and host-meta (XEP-0156) at /.well-known/host-meta.", [
    ("enabled", Bool(), "Serve the web listener at all."),
    ("interfaces", ListOf(IP_ADDRESS), "Addresses to listen on; empty means the same as "
     "c2s.interfaces."),
    ("port", PORT, "Port for plain HTTP."),
    ("tls_port", PORT, "Port for HTTPS (with the same certificate as client connections)."),
    ("https", Bool(), "Also serve HTTPS on tls_port."),
    ("allowed_origins", ListOf(ORIGIN), "Web pages (origins) allowed to use BOSH and WebSocket from "
     "a browser; empty allows any. Requests without an Origin header (non-browser clients) are "
     "always allowed."),
    ("consider_websocket_secure", Bool(), "Treat plain-HTTP WebSocket connections from 127.0.0.1/::1 "
     "as encrypted (for a TLS-terminating reverse proxy on this machine)."),
    ("consider_bosh_secure", Bool(), "Treat plain-HTTP BOSH sessions from 127.0.0.1/::1 as encrypted "
     "(for a TLS-terminating reverse proxy on this machine)."),
    ("bosh_max_wait", Duration(1, 300), "Longest a BOSH request is held waiting for data (the "
     "client's 'wait' is capped to this)."),
    ("bosh_max_hold", Int(1, 5), "Most BOSH requests held at once per session (the client's 'hold' "
     "is capped to this)."),
    ("bosh_inactivity", Duration(5, 3600), "Time without any request before a BOSH session is "
     "closed."),
    ("webchat", Bool(), "Serve the web chat (Converse.js, part of Parlour) at /chat, over HTTPS."),
])
# --- end [http] ---

# --- [acme] (automatic certificates) ---
_DIRECTORY_ALIASES = {"letsencrypt": model.LETS_ENCRYPT, "letsencrypt-staging": model.LETS_ENCRYPT_STAGING}


def check_acme_directory(text: str) -> str:
    """An ACME directory URL (https), or the shortcut "letsencrypt" / "letsencrypt-staging"."""
    text = text.strip()
    if text.lower() in _DIRECTORY_ALIASES:
        return _DIRECTORY_ALIASES[text.lower()]
    if not re.match(r"^https://[^\s/]+(/\S*)?$", text):
        raise ValueError(text)
    return text


def check_email(text: str) -> str:
    """An e-mail address, or "" for none."""
    text = text.strip()
    if text and not re.match(r"^[^@\s:]+@[^@\s]+\.[^@\s]+$", text):
        raise ValueError(text)
    return text


def check_nameserver(text: str) -> str:
    """An IP address with an optional port: "1.1.1.1", "127.0.0.1:8053", "[::1]:53"."""
    text = text.strip()
    match = re.match(r"^\[([0-9a-fA-F:.]+)\]:(\d+)$", text) or re.match(r"^([0-9.]+):(\d+)$", text)
    host, port = (match.group(1), int(match.group(2))) if match else (text, 53)
    if not 1 <= port <= 65535:
        raise ValueError(text)
    address = ipaddress.ip_address(host)
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


NAMESERVER = Text('an IP address with an optional port like "1.1.1.1" or "127.0.0.1:8053"', check_nameserver)

ACME = _table("acme", model.AcmeConfig, "Automatic certificates from an ACME certificate authority (Let's "
              "Encrypt by default) for every hosted name, renewed when a third of their lifetime is left.", [
    ("enabled", Bool(), "Get certificates automatically. Every hosted name must resolve to this server "
     "from the internet."),
    ("directory", Text('an https URL, "letsencrypt" or "letsencrypt-staging"', check_acme_directory),
     "The certificate authority's ACME directory URL; \"letsencrypt-staging\" is Let's Encrypt's test "
     "service (untrusted certificates, generous limits)."),
    ("email", Text('an e-mail address like "admin@example.org" (or "" for none)', check_email),
     "Contact address given to the certificate authority (expiry warnings, policy changes)."),
    ("agree_tos", Bool(), "You agree to the certificate authority's terms of service (required)."),
    ("challenge", Choice.of(model.AcmeChallenge), "How the authority checks that you control the "
     "names: a file over plain HTTP on http_port, or a special TLS handshake on tls_port."),
    ("webroot", PathKind(optional=True), "For HTTP-01 behind a reverse proxy: write the challenge files "
     "into <webroot>/.well-known/acme-challenge/ instead of opening http_port."),
    ("http_port", PORT, "Port the authority uses for HTTP-01 (80). Parlour listens there for challenges "
     "and redirects other requests to HTTPS, unless webroot is set."),
    ("tls_port", PORT, "Port the authority uses for TLS-ALPN-01 (443); http.tls_port or "
     "c2s.direct_tls_port must be this port."),
    ("ca_bundle", PathKind(optional=True), "PEM file of CAs to trust for the ACME server's own HTTPS "
     "(a private or test ACME server); empty uses the system's."),
    ("nameservers", ListOf(NAMESERVER),
     "DNS servers for the pre-flight check of every name; empty uses this machine's resolver."),
])
# --- end [acme] ---

# --- [s2s] (federation) ---
_ROUTE_TARGET = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)(?::(\d{1,5}))?$")


def check_static_route(text: str) -> str:
    """ "domain=host:port" (the port may be left out: 5269; an IPv6 address goes in brackets)."""
    domain, sep, target = text.partition("=")
    match = _ROUTE_TARGET.match(target.strip())
    if not sep or not match or (match[2] and not 1 <= int(match[2]) <= 65535):
        raise ValueError(text)
    return f"{check_domain(domain.strip())}={target.strip()}"


S2S = _table("s2s", model.S2SConfig, "How server-to-server connections (RFC 6120) are made when "
             "federation.enabled is on: listener, authentication, DNS, limits.", [
    ("interfaces", ListOf(IP_ADDRESS), "Addresses to listen on for other servers; empty uses "
     "c2s.interfaces."),
    ("port", PORT, "Port for incoming server connections (STARTTLS)."),
    ("direct_tls_port", Int(0, 65535), "Port for incoming server connections with direct TLS (XEP-0368, "
     "published as _xmpps-server._tcp); 0 turns it off."),
    ("require_encryption", Bool(), "Refuse server connections without TLS."),
    ("require_valid_certificates", Bool(), "Accept only servers whose certificate validates (SASL "
     "EXTERNAL); false also allows Server Dialback (XEP-0220) for the others."),
    ("secure_domains", ListOf(DOMAIN), "Domains that must always present a valid certificate."),
    ("insecure_domains", ListOf(DOMAIN), "Domains allowed to use Server Dialback (and no TLS) whatever the "
     "settings above say."),
    ("ca_bundle", PathKind(optional=True), "PEM file of CAs trusted for other servers' certificates; empty "
     "uses the system's."),
    ("nameservers", ListOf(NAMESERVER),
     "DNS servers for finding other servers (SRV records); empty uses this machine's resolver."),
    ("static_routes", ListOf(Text('a route like "example.org=192.0.2.7:5269"', check_static_route)),
     "Fixed addresses for some domains, used instead of DNS (LANs, tests)."),
    ("dns_timeout", Duration(0.1, 60), "Time a DNS lookup may take."),
    ("connect_timeout", Duration(0.1, 300), "Time to open a TCP connection to another server."),
    ("tls_timeout", Duration(0.1, 300), "Time for the TLS handshake."),
    ("auth_timeout", Duration(0.1, 600), "Time from connecting to an authenticated stream."),
    ("queue_timeout", Duration(1, 3600), "Stanzas not delivered within this time are returned to their "
     "sender with an error."),
    ("idle_timeout", Duration(10, ONE_DAY), "Silence after which a server connection is closed."),
    ("max_remote_stanza_size", Size(10_000, 64 * 1024**2), "Largest stanza accepted from another server."),
    ("max_connections_per_domain", Int(1, 1000), "Simultaneous incoming connections from one domain."),
    ("max_connections_per_ip", Int(1, 100_000), "Simultaneous incoming server connections from one IP "
     "address."),
    ("max_queue", Int(1, 1_000_000), "Stanzas held per remote domain while its connection is made."),
    ("stream_management", Bool(), "Use Stream Management (XEP-0198) with servers that offer it, and offer "
     "it: stanzas unconfirmed when a connection breaks are sent again on the next one."),
    ("bidi", Bool(), "Bidirectional server connections (XEP-0288): with servers that agree, one connection "
     "carries stanzas both ways instead of one connection each way."),
])
# --- end [s2s] ---

# --- [console] (setup wizard, admin console, API) ---
CONSOLE = _table("console", model.ConsoleConfig, "The admin console at /admin, the JSON API at /api/v1 "
                 "(docs/api.md), /metrics and invitation links at /invite/<token>.", [
    ("enabled", Bool(), "Serve the admin console, the API and /metrics on the web listener."),
    ("language", Choice(("auto", "en", "de", "fr", "es")), "Language of the web pages; auto follows "
     "the browser (a visitor can still switch)."),
    ("session_lifetime", Duration(60, 30 * ONE_DAY), "How long a console login lasts."),
    ("login_failures", Int(1, 1000), "Failed console logins from one source (an IPv4 address, an IPv6 /64) "
     "within limits.auth_window before that source is blocked for limits.auth_block_time; four times as "
     "many to one account from all sources block it for sources that never logged in to it."),
    ("invitations", Bool(), "Let administrators create invitation links that open a signup page."),
    ("invitation_lifetime", Duration(60, 365 * ONE_DAY), "How long an invitation link stays valid."),
])
# --- end [console] ---

# --- [backup] (scheduled backups) ---
def check_time_of_day(text: str) -> str:
    """A time of day as HH:MM on a 24-hour clock."""
    match = re.match(r"^([01]?\d|2[0-3]):([0-5]\d)$", text.strip())
    if match is None:
        raise ValueError(text)
    return f"{int(match[1]):02d}:{match[2]}"


BACKUP = _table("backup", model.BackupConfig, "Daily backups of the whole installation (database, uploads, "
                "certificates and keys, this file) into one file each, as `parlour backup` writes them; the "
                "console shows the last one and offers a fresh one for download.", [
    ("enabled", Bool(), "Make a backup every day."),
    ("time", Text('a time of day like "03:30" (24-hour clock)', check_time_of_day), "When, in the server "
     "machine's local time."),
    ("keep", Int(1, 365), "How many daily backups to keep; older ones are deleted."),
    ("folder", PathKind(optional=True), "Where to write them (readable by the server's user only); empty "
     "means <state_dir>/backups. Another disk or a network share survives the loss of this one."),
])
# --- end [backup] ---

# --- [turn] (built-in STUN/TURN server for calls) ---
def check_network(text: str) -> str:
    """An IP network like "10.0.0.0/8" or one address."""
    return str(ipaddress.ip_network(text.strip(), strict=False))


def check_optional_ip(text: str) -> str:
    return check_ip(text) if text.strip() else ""


def check_host_or_ip(text: str) -> str:
    """A domain name, an IP address, or empty."""
    text = text.strip()
    return check_ip(text) if _is_ip(text) else check_domain(text) if text else ""


TURN = _table("turn", model.TurnConfig, "The built-in STUN and TURN server for audio and video calls "
              "(docs/calls.md). Clients learn it, with credentials valid for a day, through XEP-0215.", [
    ("enabled", Bool(), "Run the STUN/TURN server and announce it to clients."),
    ("host", Text("a domain name or an IP address", check_host_or_ip), "The name clients reach it "
     "by; empty means each XMPP domain's own name."),
    ("interfaces", ListOf(IP_ADDRESS), "Addresses to listen on."),
    ("port", PORT, "Port for STUN and TURN over UDP and TCP."),
    ("tls_port", Int(0, 65535), "Port for TURN over TLS (5349 by convention), with the server's "
     "certificate; 0 turns it off."),
    ("relay_address", Text("an IP address or empty", check_optional_ip), "Address relays are opened on; "
     "empty means this machine's first LAN address."),
    ("external_address", Text("an IP address or empty", check_optional_ip), "Public address of a NAT "
     "router in front of this server (its relay ports forwarded here), announced to clients instead."),
    ("min_port", Int(1024, 65535), "Lowest port of the relay range (open it in the firewall)."),
    ("max_port", Int(1024, 65535), "Highest port of the relay range."),
    ("user_quota", Int(1, 10_000), "Relays one user may hold at once (a call needs one or two)."),
    ("total_quota", Int(1, 1_000_000), "Relays the server holds at once."),
    ("max_lifetime", Duration(60, 86400), "Longest time a relay lives without being refreshed."),
    ("secret", Text("a string", str), "Shared secret of the credentials; empty generates one into "
     "<state_dir>/turn.secret. Set it to share it with another TURN server (coturn: static-auth-secret)."),
    ("denied_peers", ListOf(Text('a network like "10.0.0.0/8"', check_network)), "Networks relays never send "
     "to; the default keeps this machine's loopback, link-local and multicast out of reach."),
])
# --- end [turn] ---

# --- [ldap] (directory login) ---
_LDAP_URI = re.compile(r"^ldaps?://([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?/?$")


def check_ldap_uri(text: str) -> str:
    """"" or an LDAP URI like "ldap://dc1.example.org" or "ldaps://dc1.example.org:636"."""
    text = text.strip()
    if text and not _LDAP_URI.match(text):
        raise ValueError(text)
    return text.rstrip("/")


def check_ldap_filter(text: str) -> str:
    """An LDAP search filter in parentheses (RFC 4515), balanced."""
    text = text.strip()
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            raise ValueError(text)
    if not text.startswith("(") or depth != 0:
        raise ValueError(text)
    return text


LDAP_FILTER = Text('an LDAP filter like "(objectClass=person)"', check_ldap_filter)

LDAP = _table("ldap", model.LdapConfig, "Log in with the company directory (OpenLDAP, Active Directory, Samba; "
              "docs/directory.md): directory users keep their directory password, which is never stored "
              "here; their vCards and shared groups come from the directory. Local accounts (the "
              "administrator) keep working beside them.", [
    ("enabled", Bool(), "Check passwords of accounts without a local password against the directory."),
    ("uri", Text('an LDAP URI like "ldap://dc1.example.org" or "ldaps://dc1.example.org:636"', check_ldap_uri),
     "The directory server; ldaps:// is TLS from the first byte (port 636)."),
    ("starttls", Bool(), "For ldap:// URIs: switch to TLS before sending any password (StartTLS). Turn it "
     "off only for a directory on this machine."),
    ("ca_file", PathKind(optional=True), "PEM file of the CA that signed the directory's certificate; empty "
     "uses the system's CAs. The certificate is always checked."),
    ("bind_dn", Text("a DN", str.strip), 'The service account that searches, e.g. "cn=parlour,ou=services,'
     'dc=example,dc=org" (Active Directory also takes "parlour@example.org"); empty binds anonymously.'),
    ("bind_password", Text("a password", str), "Its password (keep this file readable by the server only)."),
    ("base", Text("a DN", str.strip), 'Where users are searched, e.g. "ou=people,dc=example,dc=org".'),
    ("user_filter", LDAP_FILTER, 'Which entries are users; may use {username}, e.g. "(&(objectClass=user)'
     '(userPrincipalName={username}@example.org))", else user_attribute=username is added.'),
    ("user_attribute", Text("an attribute name", str.strip), 'The attribute holding the username (the part '
     'before @ in the chat address): "uid" for OpenLDAP, "sAMAccountName" for Active Directory.'),
    ("group_base", Text("a DN", str.strip), "Where the console looks for groups a shared group can follow; "
     "empty uses base."),
    ("group_filter", LDAP_FILTER, "Which entries are groups (their member, uniqueMember or memberUid values "
     "are the members)."),
    ("login_group", Text("a DN", str.strip), "Only members of this group (nested groups count) may log in; "
     "empty lets every user found log in."),
    ("active_directory", Bool(), "Active Directory: nested groups are read in one search with "
     "LDAP_MATCHING_RULE_IN_CHAIN instead of group by group."),
    ("hosts", ListOf(DOMAIN), "Hosts whose users are in the directory; empty means every host."),
    ("connect_timeout", Duration(0.1, 120), "Time to open a connection to the directory."),
    ("timeout", Duration(0.1, 600), "Time one directory request may take."),
    ("pool_size", Int(1, 100), "Connections of the service account kept open for searches."),
    ("vcards", Bool(), "Fill each directory user's vCard (name, mail, phone, photo) from the directory "
     "when they log in."),
    ("sync_interval", Duration(10, ONE_DAY), "How often the members of directory groups are read again "
     "for shared groups."),
])
# --- end [ldap] ---

_SHAPING = (  # [limits] and [hosts."name".limits]
    ("rate", Size(1024, 1024**3), "Bytes per second a logged-in client may send over time; reading from a "
     "faster one pauses (TCP, WebSocket and BOSH alike)."),
    ("stanza_rate", Int(1, 1_000_000), "Stanzas per second a logged-in client may send over time (a host "
     "may set both its own way in [hosts.\"name\".limits])."),
)

LIMITS = _table("limits", model.LimitsConfig, "Limits that keep one client from hurting the others.", [
    ("max_stanza_size", Size(10_000, 64 * 1024**2), "Largest stanza accepted from a client."),
    ("max_depth", Int(8, 1024), "Deepest element nesting accepted in a stanza."),
    ("max_connections_per_ip", Int(1, 1_000_000), "Simultaneous connections from one IP address."),
    ("max_connections", Int(1, 10_000_000), "Simultaneous connections in total."),
    ("auth_failures_per_ip", Int(1, 1_000_000), "Failed client logins from one IP address within "
     "auth_window before its further attempts are slowed down (1 s apart, doubling up to auth_max_delay)."),
    ("auth_failures_per_account", Int(1, 1_000_000), "Failed client logins to one account from one IP "
     "address within auth_window before they are slowed down; from all addresses together, ten times as "
     "many (an address the account logged in from before, and FAST tokens, are not slowed by those)."),
    ("auth_window", Duration(1, 7 * ONE_DAY), "Time over which failed logins are counted."),
    ("auth_block_time", Duration(1, 7 * ONE_DAY), "How long a blocked IP address or account stays "
     "blocked (console logins)."),
    ("auth_max_delay", Duration(1, ONE_DAY), "Longest wait of a client login that is slowed down."),
    *_SHAPING,
    ("preauth_rate", Size(1024, 1024**3), "Bytes per second a client may send before it has logged in."),
    ("preauth_stanza_rate", Int(1, 1_000_000), "Stanzas per second a client may send before it has "
     "logged in."),
    ("burst", Duration(0.1, 3600), "Seconds of traffic at its rate a client may send at once (never less "
     "than one stanza of max_stanza_size)."),
    ("auth_failure_delay", Duration(0, 60), "Pause before answering a failed login."),
    ("scram_iterations", Int(4096, 10_000_000), "PBKDF2 iterations for newly stored passwords "
     "(RFC 7677 asks for at least 4096)."),
])

HOST_LIMITS = _table("hosts.<name>.limits", model.ShapingConfig, "Per-host rates of logged-in clients, key "
                     "by key over [limits].", _SHAPING)

_POSTGRES_URL = re.compile(r"^postgres(ql)?://[^\s]*$")


def check_storage_url(text: str) -> str:
    """"" (the embedded SQLite file) or a libpq URL of a PostgreSQL database."""
    text = text.strip()
    if text and not _POSTGRES_URL.match(text):
        raise ValueError(text)
    return text


STORAGE = _table("storage", model.StorageConfig, "Where the server's data lives (docs/postgresql.md).", [
    ("url", Text('"" (the embedded SQLite database, parlour.db in the state folder) or a PostgreSQL URL like '
                 '"postgresql://parlour@db.example.org/parlour"', check_storage_url),
     "The database: empty for the embedded SQLite file, or a postgresql:// URL (libpq syntax; a password "
     "may also come from ~/.pgpass or PGPASSWORD). `parlour db migrate` moves the data over."),
    ("pool_size", Int(2, 200), "Connections to PostgreSQL: one writer that group-commits, the others "
     "readers. Unused with SQLite."),
])

_REDIS_URL = re.compile(r"^(redis|rediss|unix)://[^\s]*$")
_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def check_redis_url(text: str) -> str:
    """A redis:// (rediss:// with TLS, unix:// for a socket) URL as redis-py reads it."""
    text = text.strip()
    if not _REDIS_URL.match(text):
        raise ValueError(text)
    return text


def check_node_name(text: str) -> str:
    """"" (the host name) or a name of letters, digits, '.', '_' and '-' (it is part of Redis keys)."""
    text = text.strip()
    if text and not _NODE_NAME.match(text):
        raise ValueError(text)
    return text


CLUSTER = _table("cluster", model.ClusterConfig, "Several nodes sharing PostgreSQL and Redis "
                 "(docs/cluster.md).", [
    ("enabled", Bool(), "Run as one node of a cluster: sessions are registered in Redis and stanzas for "
     "users on other nodes travel through it. Needs [storage] url on the PostgreSQL all nodes share."),
    ("redis_url", Text('a URL like "redis://127.0.0.1:6379/0" (rediss:// for TLS)', check_redis_url),
     "The Redis server the nodes share (a password goes in the URL: redis://:secret@host:6379/0)."),
    ("node", Text('"" or a name like "xmpp-1"', check_node_name), "This node's name, unique in the "
     "cluster; empty: the machine's host name."),
    ("heartbeat", Duration(0.2, 60), "Time between the renewals of this node's \"alive\" key in Redis."),
    ("expiry", Duration(1, 600), "Silence after which a node counts as dead: its sessions end (contacts see "
     "them go unavailable) and the stanzas queued for it are delivered elsewhere. Keep it several heartbeats."),
])

LOGGING = _table("logging", model.LoggingConfig, "Logging.", [
    ("level", Choice(("debug", "info", "warning", "error")), "Least severe messages that are logged."),
    ("stanzas", Bool(), "Log every stanza at debug level (contains private messages)."),
])


# --- value kinds of module options ---
def check_optional_domain(text: str) -> str:
    return check_domain(text) if text.strip() else ""


_HTTP_URL = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+(/[^\s?#]*)?$")


_WEB_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")


def check_web_url(text: str) -> str:
    """An http(s) URL of a document (path and query allowed)."""
    if not _WEB_URL.match(text):
        raise ValueError(text)
    return text


def check_url_base(text: str) -> str:
    """An http(s) URL without query or fragment, or "" (trailing slashes are dropped)."""
    text = text.strip().rstrip("/")
    if text and not _HTTP_URL.match(text):
        raise ValueError(text)
    return text


_SERVICE_URI = re.compile(r"^(stun|stuns|turn|turns):([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?"
                          r"(\?transport=(udp|tcp))?$")


def check_service_uri(text: str) -> str:
    """A STUN/TURN URI (RFC 7064, RFC 7065): "turn:turn.example.org:3478?transport=udp"."""
    text = text.strip()
    match = _SERVICE_URI.match(text)
    if match is None or (match[3] and not 0 < int(match[3][1:]) < 65536):
        raise ValueError(text)
    return text


def check_any(text: str) -> str:
    return text


OPTIONAL_DOMAIN = Text('a domain name like "upload.example.org" (or "" for the default)', check_optional_domain)
URL_BASE = Text('an http(s) URL like "https://upload.example.org:5443" (or "" for the default)', check_url_base)
WEB_URL = Text('an http(s) URL like "https://status.example.org/xmpp.json"', check_web_url)
SERVICE_URI = Text('a STUN/TURN URI like "turn:turn.example.org:3478?transport=udp"', check_service_uri)
SECRET = Text("a string", check_any)


_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def check_label(text: str) -> str:
    """One DNS label ("conference"), lower case."""
    text = text.strip().lower()
    if not _LABEL.match(text):
        raise ValueError(text)
    return text


LABEL = Text('a DNS label like "conference"', check_label)
NAME = Text("a name", str.strip)


MODULES_DISABLED = _key(model.ModulesConfig, "disabled", ListOf(MODULE_NAME), "Modules that are not loaded.")
"""The one key of [modules] itself; every module adds its own table (config/options.py collects them)."""

CORE_SECTIONS: tuple[Table, ...] = (
    SERVER, C2S, TLS, COMPONENTS, FEDERATION, S2S, ACME, HTTP, CONSOLE, BACKUP, TURN, LDAP, LIMITS, STORAGE,
    CLUSTER,
    LOGGING,
)
"""The top-level tables of the core in documentation order; [modules] and `hosts` come after them."""


# --- TOML rendering --------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_key(name: str) -> str:
    return name if _BARE_KEY.match(name) else json.dumps(name, ensure_ascii=False)


def toml_literal(value: object, limit: int = 0) -> str:
    """A parsed TOML value written back as TOML, cut to `limit` characters when limit > 0."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, Path):
        text = json.dumps(str(value), ensure_ascii=False)
    elif isinstance(value, list | tuple):
        text = "[" + ", ".join(toml_literal(v) for v in value) + "]"
    elif isinstance(value, dict):
        inner = ", ".join(f"{toml_key(k)} = {toml_literal(v)}" for k, v in value.items())
        text = "{ " + inner + " }" if inner else "{}"
    elif hasattr(value, "isoformat"):
        text = value.isoformat()
    else:
        text = repr(value) if isinstance(value, float) else str(value)
    if limit and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text
