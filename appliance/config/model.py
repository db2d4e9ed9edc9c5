"""Typed, frozen configuration: what the rest of Parlour sees after loading parlour.toml."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Protocol, TypeVar, runtime_checkable

ResourceConflict = Literal["replace", "reject"]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Process-wide settings."""

    state_dir: Path
    admins: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """Certificates for c2s TLS; empty paths mean "make a self-signed one in the state directory"."""

    certificate: Path | None = None
    private_key: Path | None = None
    ocsp_stapling: bool = True


@dataclass(frozen=True, slots=True)
class C2SConfig:
    """Client-to-server listeners and session policy."""

    interfaces: tuple[str, ...] = ("0.0.0.0", "::")
    port: int = 5222
    direct_tls_port: int = 5223  # 0 disables the XEP-0368 listener
    require_encryption: bool = True
    allow_plaintext_on_loopback: bool = False
    resource_conflict: ResourceConflict = "replace"
    max_resources: int = 10
    legacy_session: bool = True
    idle_timeout: float = 600.0  # seconds without any byte before a ping; then ping_timeout to close
    ping_timeout: float = 60.0
    handshake_timeout: float = 60.0  # seconds from connect to a bound resource


# --- [components] (external components, XEP-0114) ---
@dataclass(frozen=True, slots=True)
class ComponentsConfig:
    """External components (XEP-0114): gateways and bots that connect with a shared secret and serve a
    domain of their own (irc.example.org)."""

    interfaces: tuple[str, ...] = ("127.0.0.1",)  # loopback: components normally run on this machine
    port: int = 5347  # 0 (tests only, not accepted in a file): any free port
    secrets: tuple[tuple[str, str], ...] = ()  # (component domain, shared secret); none: no listener

    def secret(self, domain: str) -> str | None:
        return next((secret for name, secret in self.secrets if name == domain), None)
# --- end [components] ---


# --- [federation] (which other servers we talk to) ---
FederationMode = Literal["blocklist", "allowlist"]


@dataclass(frozen=True, slots=True)
class FederationConfig:
    """Federation policy: on or off, and which remote domains are refused (or the only ones allowed)."""

    enabled: bool = False  # off until the administrator says so: a LAN-only office talks to nobody outside
    mode: FederationMode = "blocklist"  # allowlist: only allowed_domains
    blocked_domains: tuple[str, ...] = ()
    allowed_domains: tuple[str, ...] = ()
    silent_drop: bool = False  # True: refused stanzas are dropped without telling the sender
# --- end [federation] ---
# --- [s2s] (federation) ---
@dataclass(frozen=True, slots=True)
class S2SConfig:
    """Server-to-server connections (made when federation.enabled): listener, authentication, resolver, limits."""

    interfaces: tuple[str, ...] = ()  # empty: the same as c2s.interfaces
    port: int = 5269  # 0 (tests only, not accepted in a file): any free port
    direct_tls_port: int = 5270  # XEP-0368: TLS from the first byte; 0 turns that listener off
    require_encryption: bool = True
    require_valid_certificates: bool = False  # False: Server Dialback when a certificate does not validate
    secure_domains: tuple[str, ...] = ()  # always need a valid certificate
    insecure_domains: tuple[str, ...] = ()  # may use dialback (and no TLS) even when the rules above say no
    ca_bundle: Path | None = None  # CAs trusted for peer certificates; empty: the system's
    nameservers: tuple[str, ...] = ()
    static_routes: tuple[str, ...] = ()  # "domain=host:port" instead of DNS
    dns_timeout: float = 5.0
    connect_timeout: float = 10.0
    tls_timeout: float = 10.0
    auth_timeout: float = 30.0
    queue_timeout: float = 60.0  # stanzas waiting longer for a connection bounce to their sender
    idle_timeout: float = 600.0
    max_remote_stanza_size: int = 1_048_576
    max_connections_per_domain: int = 4
    max_connections_per_ip: int = 8
    max_queue: int = 1000  # stanzas waiting per remote domain
    stream_management: bool = True  # XEP-0198 on server streams: confirmations, resuming after a break
    bidi: bool = True  # XEP-0288: one connection carries stanzas both ways when the peer agrees
# --- end [s2s] ---


# --- [http] (web transports) ---
@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The web listener: BOSH, WebSocket and host-meta (later the setup wizard and admin console)."""

    enabled: bool = True
    interfaces: tuple[str, ...] = ()  # empty: the same as c2s.interfaces
    port: int = 5280  # 0 (tests only, not accepted in a file): any free port
    tls_port: int = 5443  # likewise
    https: bool = True  # also serve HTTPS on tls_port with the server's certificate
    allowed_origins: tuple[str, ...] = ()  # empty: any web page may connect
    consider_websocket_secure: bool = False  # plain-HTTP WebSocket from loopback counts as encrypted
    consider_bosh_secure: bool = False  # plain-HTTP BOSH from loopback counts as encrypted
    bosh_max_wait: float = 60.0
    bosh_max_hold: int = 2
    bosh_inactivity: float = 60.0
    webchat: bool = True  # serve the web chat (Converse.js) at /chat
# --- end [http] ---


# --- [acme] (automatic certificates) ---
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
AcmeChallenge = Literal["http-01", "tls-alpn-01"]


@dataclass(frozen=True, slots=True)
class AcmeConfig:
    """Automatic certificates from an ACME certificate authority (Let's Encrypt by default)."""

    enabled: bool = False
    directory: str = LETS_ENCRYPT
    email: str = ""
    agree_tos: bool = False
    challenge: AcmeChallenge = "http-01"
    webroot: Path | None = None  # HTTP-01 through a reverse proxy: token files are written here
    http_port: int = 80  # where the CA checks HTTP-01; Parlour listens here unless webroot is set
    tls_port: int = 443  # where the CA checks TLS-ALPN-01; one of Parlour's TLS listeners must be on it
    ca_bundle: Path | None = None  # trust for the ACME server's own HTTPS (a test CA); empty: system
    nameservers: tuple[str, ...] = ()  # DNS servers for the pre-flight check; empty: the system's
# --- end [acme] ---


# --- [console] (setup wizard, admin console, API) ---
@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """The admin console at /admin, the JSON API at /api/v1 and invitation links."""

    enabled: bool = True
    language: Literal["auto", "en", "de", "fr", "es"] = "auto"  # auto: follow the browser
    session_lifetime: float = 8 * 3600.0
    login_failures: int = 5  # failed console logins per source within limits.auth_window (see spec)
    invitations: bool = True  # administrators may create invitation links that open a signup page
    invitation_lifetime: float = 7 * 86400.0
# --- end [console] ---


# --- [backup] (scheduled backups) ---
@dataclass(frozen=True, slots=True)
class BackupConfig:
    """Daily backups of the whole installation (what `parlour backup` writes), the oldest removed."""

    enabled: bool = True
    time: str = "03:30"  # HH:MM, the server machine's local time
    keep: int = 7
    folder: Path | None = None  # None: <state_dir>/backups
# --- end [backup] ---


# --- [turn] (built-in STUN/TURN server for calls) ---
DEFAULT_DENIED_PEERS = ("127.0.0.0/8", "::1/128", "0.0.0.0/8", "::/128", "224.0.0.0/4", "ff00::/8",
                        "169.254.0.0/16", "fe80::/10")


@dataclass(frozen=True, slots=True)
class TurnConfig:
    """The built-in STUN and TURN server (RFC 8489, RFC 8656) that audio and video calls go through."""

    enabled: bool = False
    host: str = ""  # the name clients are told; "": each XMPP host's own domain
    interfaces: tuple[str, ...] = ("0.0.0.0",)
    port: int = 3478  # UDP and TCP
    tls_port: int = 0  # TURN over TLS (5349 by convention); 0: off
    relay_address: str = ""  # the address relays are opened on; "": this machine's first LAN address
    external_address: str = ""  # the public address of a NAT in front, announced instead of relay_address
    min_port: int = 49152
    max_port: int = 65535
    user_quota: int = 10  # allocations one user may hold at once
    total_quota: int = 1000
    max_lifetime: float = 3600.0
    secret: str = ""  # "": generated once into <state_dir>/turn.secret
    denied_peers: tuple[str, ...] = DEFAULT_DENIED_PEERS
# --- end [turn] ---


# --- [ldap] (directory login) ---
@dataclass(frozen=True, slots=True)
class LdapConfig:
    """Logins, vCards and shared groups from an LDAP directory (OpenLDAP, Active Directory, Samba)."""

    enabled: bool = False
    uri: str = ""  # ldap://dc1.example.org or ldaps://dc1.example.org:636
    starttls: bool = True  # for ldap:// URIs
    ca_file: Path | None = None  # None: the system's CAs
    bind_dn: str = ""  # the service account that searches; "" binds anonymously
    bind_password: str = ""
    base: str = ""  # where users are searched
    user_filter: str = "(objectClass=person)"
    user_attribute: str = "uid"  # the attribute whose value is the XMPP username
    group_base: str = ""  # "": base
    group_filter: str = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=group))"
    login_group: str = ""  # DN of a group whose (nested) members may log in; "": every user found
    active_directory: bool = False  # nested groups by LDAP_MATCHING_RULE_IN_CHAIN
    hosts: tuple[str, ...] = ()  # hosts whose users the directory provides; (): every host
    connect_timeout: float = 5.0
    timeout: float = 10.0
    pool_size: int = 4
    vcards: bool = True
    sync_interval: float = 300.0  # seconds between reads of directory groups for shared groups

    def serves(self, host: str) -> bool:
        return self.enabled and (not self.hosts or host in self.hosts)
# --- end [ldap] ---


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Resource limits that keep one client from hurting the others."""

    max_stanza_size: int = 262_144
    max_depth: int = 64
    max_connections_per_ip: int = 50
    max_connections: int = 20_000
    auth_failures_per_ip: int = 10  # within auth_window before logins from the IP are slowed down
    auth_failures_per_account: int = 5  # per address within auth_window before logins are slowed down
    auth_window: float = 300.0
    auth_block_time: float = 300.0
    auth_max_delay: float = 60.0  # the longest wait a throttled login gets
    rate: int = 65_536  # bytes per second a logged-in client may send; see ShapingConfig per host
    stanza_rate: int = 100
    preauth_rate: int = 8192  # the same before authentication
    preauth_stanza_rate: int = 10
    burst: float = 4.0  # seconds of traffic allowed at once above the rate
    auth_failure_delay: float = 1.0
    scram_iterations: int = 4096


@dataclass(frozen=True, slots=True)
class ShapingConfig:
    """What one host's logged-in clients may send ([hosts."name".limits] over [limits])."""

    rate: int = 65_536
    stanza_rate: int = 100


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """Where accounts, rosters, archives … are stored: the embedded SQLite file, or a PostgreSQL server."""

    url: str = ""  # "": <state_dir>/parlour.db; "postgresql://…": that database
    pool_size: int = 5  # PostgreSQL connections: one writer, the others readers


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Several Parlour nodes sharing PostgreSQL and Redis (docs/cluster.md); off: one standalone server."""

    enabled: bool = False
    redis_url: str = "redis://127.0.0.1:6379/0"
    node: str = ""  # "": the machine's host name
    heartbeat: float = 2.0  # seconds between a node's "alive" renewals
    expiry: float = 10.0  # a node silent this long is dead: its sessions end, its queue is redelivered


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """Log level and optional stanza tracing."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    stanzas: bool = False


OptionsT = TypeVar("OptionsT")


@dataclass(frozen=True, slots=True)
class ModulesConfig:
    """Per-module options; `disabled` names modules that are not loaded.

    Each module declares its options dataclass beside its code; the loader keeps one instance per enabled
    module (read from [modules.<name>] with the host's overrides), and `of` hands a module its own.
    """

    disabled: tuple[str, ...] = ()
    options: tuple[object, ...] = ()  # one options dataclass per enabled module that has options

    def of(self, cls: type[OptionsT]) -> OptionsT:
        """The configured options of type `cls`; its defaults when the file set none."""
        for options in self.options:
            if type(options) is cls:
                return options  # type: ignore[return-value]
        return cls()

    def with_options(self, *changed: object) -> ModulesConfig:
        """A copy with `changed` in place of the options of the same types (tests, live settings)."""
        by_type = {type(o): o for o in changed}
        kept = tuple(by_type.pop(type(o), o) for o in self.options)
        return replace(self, options=kept + tuple(by_type.values()))

    def service_domains(self, host: str) -> list[str]:
        """The domains that enabled modules serve beside `host` (conference., upload. ...), for certificates:
        each options dataclass of such a module has a `service_domain(host)` method."""
        return [o.service_domain(host) for o in self.options if isinstance(o, ServesDomain)]


@runtime_checkable
class ServesDomain(Protocol):
    """Options of a module that serves a domain of its own under the host (multi-user chat, upload ...)."""

    def service_domain(self, host: str) -> str: ...


@dataclass(frozen=True, slots=True)
class HostConfig:
    """One virtual host (a domain served by this server)."""

    name: str
    modules: ModulesConfig = field(default_factory=ModulesConfig)
    limits: ShapingConfig | None = None  # None: [limits] applies


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration."""

    server: ServerConfig
    hosts: tuple[HostConfig, ...]
    c2s: C2SConfig = field(default_factory=C2SConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    components: ComponentsConfig = field(default_factory=ComponentsConfig)  # [components]
    federation: FederationConfig = field(default_factory=FederationConfig)  # [federation]
    s2s: S2SConfig = field(default_factory=S2SConfig)  # [s2s]
    http: HttpConfig = field(default_factory=HttpConfig)  # [http]
    acme: AcmeConfig = field(default_factory=AcmeConfig)  # [acme]
    console: ConsoleConfig = field(default_factory=ConsoleConfig)  # [console]
    backup: BackupConfig = field(default_factory=BackupConfig)  # [backup]
    turn: TurnConfig = field(default_factory=TurnConfig)  # [turn]
    ldap: LdapConfig = field(default_factory=LdapConfig)  # [ldap]
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)  # [storage]
    cluster: ClusterConfig = field(default_factory=ClusterConfig)  # [cluster]
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    source: Path | None = None

    def host(self, name: str) -> HostConfig | None:
        for host in self.hosts:
            if host.name == name:
                return host
        return None
