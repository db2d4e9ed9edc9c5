"""Typed, frozen configuration: what the rest of Parlour sees after loading parlour.toml."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

ResourceConflict = Literal["replace", "reject"]
RegistrationPolicy = Literal["closed", "open", "loopback"]


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
    login_failures: int = 5  # failed console logins per IP (and per account) within limits.auth_window
    invitations: bool = True  # administrators may create invitation links that open a signup page
    invitation_lifetime: float = 7 * 86400.0
# --- end [console] ---


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Resource limits that keep one client from hurting the others."""

    max_stanza_size: int = 262_144
    max_depth: int = 64
    max_connections_per_ip: int = 50
    max_connections: int = 20_000
    auth_failures_per_ip: int = 10  # within auth_window before the IP is blocked
    auth_failures_per_account: int = 5  # within auth_window before the account is blocked
    auth_window: float = 300.0
    auth_block_time: float = 300.0
    auth_failure_delay: float = 1.0
    scram_iterations: int = 4096


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """Log level and optional stanza tracing."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    stanzas: bool = False


@dataclass(frozen=True, slots=True)
class OfflineOptions:
    max_messages: int = 1000


@dataclass(frozen=True, slots=True)
class RegisterOptions:
    policy: RegistrationPolicy = "closed"
    min_password_length: int = 8
    max_per_ip_per_hour: int = 5


@dataclass(frozen=True, slots=True)
class RosterOptions:
    versioning: bool = True
    max_items: int = 1000


@dataclass(frozen=True, slots=True)
class VcardOptions:
    max_size: int = 65_536


@dataclass(frozen=True, slots=True)
class PrivateOptions:
    max_size: int = 65_536


@dataclass(frozen=True, slots=True)
class VersionOptions:
    show_os: bool = False


@dataclass(frozen=True, slots=True)
class ContactAddresses:
    """XEP-0157 addresses, each a list of URIs such as "mailto:..." or "xmpp:..."."""

    abuse: tuple[str, ...] = ()
    admin: tuple[str, ...] = ()
    feedback: tuple[str, ...] = ()
    sales: tuple[str, ...] = ()
    security: tuple[str, ...] = ()
    support: tuple[str, ...] = ()


# --- [modules.pubsub], [modules.pep] and what builds on PEP ---
PubSubCreate = Literal["everyone", "local", "admins"]
AccessModel = Literal["open", "presence", "roster", "whitelist", "authorize"]


@dataclass(frozen=True, slots=True)
class PubSubOptions:
    """The publish-subscribe service (XEP-0060) on pubsub.<host>."""

    subdomain: str = "pubsub"
    create_nodes: PubSubCreate = "local"
    max_nodes: int = 10_000
    max_items: int = 1000  # highest pubsub#max_items, and what "max" means
    default_max_items: int = 10
    default_access_model: AccessModel = "open"


@dataclass(frozen=True, slots=True)
class PepOptions:
    """Personal eventing (XEP-0163) on every account's bare JID."""

    max_nodes: int = 200  # per account
    max_items: int = 256  # highest pubsub#max_items, and what "max" means
    default_max_items: int = 1


@dataclass(frozen=True, slots=True)
class CapsOptions:
    """Entity capabilities (XEP-0115): which notifications clients want, and the server's own caps."""

    verify: bool = True  # check a client's hash against its disco#info before trusting it
    cache_size: int = 10_000  # distinct capability sets remembered
    query_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class BookmarksOptions:
    """Bookmarks (XEP-0402) with the #compat conversion to XEP-0048."""

    compat: bool = True


@dataclass(frozen=True, slots=True)
class AvatarOptions:
    """User avatars (XEP-0084) mirrored into vCard-temp (XEP-0398) and presence hashes (XEP-0153)."""

    vcard_conversion: bool = True
    presence_hash: bool = True
# --- end [modules.pubsub] ---


# --- issue 6: carbons, archive, upload, push, external services ---
@dataclass(frozen=True, slots=True)
class MamOptions:
    """Message archive (XEP-0313): default preference, retention and paging."""

    default: Literal["always", "never", "roster"] = "always"
    retention: float = 365 * 86400.0  # 0 keeps messages forever
    purge_interval: float = 3600.0
    page_size: int = 50  # page size when a query sets no RSM max
    max_page_size: int = 250


@dataclass(frozen=True, slots=True)
class UploadOptions:
    """HTTP file upload (XEP-0363) served by the web listener."""

    domain: str = ""  # empty: upload.<host>
    url_base: str = ""  # empty: https://<domain>:<http.tls_port> (or http:// when https is off)
    max_file_size: int = 100 * 1024**2
    quota: int = 1024**3  # bytes per account, uploads not yet expired included
    expiry: float = 30 * 86400.0  # files older than this are deleted; 0 keeps them
    slot_lifetime: float = 300.0  # time to start the PUT after the slot was given
    purge_interval: float = 3600.0


@dataclass(frozen=True, slots=True)
class PushOptions:
    """Push notifications (XEP-0357) to app servers."""

    include_body: bool = False
    include_sender: bool = True
    max_registrations: int = 10  # per account
    timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class ExternalServicesOptions:
    """External service discovery (XEP-0215): STUN/TURN servers and their shared secret."""

    services: tuple[str, ...] = ()  # "stun:host:port", "turn:host:port?transport=udp", "turns:..."
    secret: str = ""  # the TURN REST shared secret (coturn static-auth-secret); empty: no credentials
    credential_lifetime: float = 86400.0
# --- end issue 6 ---


# --- issue 6: session-level protocols (stream management, client state, SASL2) ---
@dataclass(frozen=True, slots=True)
class StreamManagementOptions:
    """XEP-0198: acknowledgements and resumption."""

    resume_timeout: float = 300.0  # seconds a dropped session waits to be resumed; 0: no resumption
    max_queue: int = 1000  # unacknowledged stanzas kept per session before it is closed
    request_every: int = 5  # ask for an acknowledgement after this many unacknowledged stanzas


@dataclass(frozen=True, slots=True)
class CsiOptions:
    """XEP-0352: what an inactive client is spared."""

    max_held: int = 200  # held-back stanzas per session before everything is flushed anyway


@dataclass(frozen=True, slots=True)
class Sasl2Options:
    """XEP-0388 with Bind2 (XEP-0386) and FAST (XEP-0484)."""

    bind2: bool = True
    fast: bool = True
    fast_token_lifetime: float = 21 * 86400.0
# --- end issue 6 session-level protocols ---


# --- [modules.muc] (multi-user chat) ---
MucWhois = Literal["moderators", "anyone"]
MucAllowPm = Literal["anyone", "participants", "moderators", "none"]


@dataclass(frozen=True, slots=True)
class MucRoomDefaults:
    """The configuration a new room starts with (its owner changes it through the muc#roomconfig form)."""

    public: bool = True
    persistent: bool = False
    members_only: bool = False
    moderated: bool = False
    whois: MucWhois = "moderators"  # who may see occupants' real JIDs
    max_occupants: int = 200
    history_length: int = 20
    occupants_change_subject: bool = False
    allow_invites: bool = False  # occupants (not only admins) may invite others
    allow_pm: MucAllowPm = "anyone"
    archive: bool = True  # messages go to the room archive (MAM)


@dataclass(frozen=True, slots=True)
class MucOptions:
    """Multi-user chat (XEP-0045) on conference.<host>."""

    subdomain: str = "conference"
    name: str = "Chatrooms"
    create_rooms: Literal["everyone", "local", "admins"] = "local"
    rooms_per_user: int = 100
    max_history: int = 100
    max_occupants: int = 1000
    default_room: MucRoomDefaults = field(default_factory=MucRoomDefaults)
# --- end [modules.muc] ---


@dataclass(frozen=True, slots=True)
class ModulesConfig:
    """Per-module options; `disabled` names modules that are not loaded."""

    disabled: tuple[str, ...] = ()
    offline: OfflineOptions = field(default_factory=OfflineOptions)
    register: RegisterOptions = field(default_factory=RegisterOptions)
    roster: RosterOptions = field(default_factory=RosterOptions)
    vcard: VcardOptions = field(default_factory=VcardOptions)
    private: PrivateOptions = field(default_factory=PrivateOptions)
    version: VersionOptions = field(default_factory=VersionOptions)
    contact_addresses: ContactAddresses = field(default_factory=ContactAddresses)
    muc: MucOptions = field(default_factory=MucOptions)  # [modules.muc]
    stream_management: StreamManagementOptions = field(default_factory=StreamManagementOptions)  # issue 6
    csi: CsiOptions = field(default_factory=CsiOptions)  # issue 6
    sasl2: Sasl2Options = field(default_factory=Sasl2Options)  # issue 6
    mam: MamOptions = field(default_factory=MamOptions)  # issue 6
    upload: UploadOptions = field(default_factory=UploadOptions)  # issue 6
    push: PushOptions = field(default_factory=PushOptions)  # issue 6
    external_services: ExternalServicesOptions = field(default_factory=ExternalServicesOptions)  # issue 6
    pubsub: PubSubOptions = field(default_factory=PubSubOptions)  # [modules.pubsub]
    pep: PepOptions = field(default_factory=PepOptions)  # [modules.pubsub]
    caps: CapsOptions = field(default_factory=CapsOptions)  # [modules.pubsub]
    bookmarks: BookmarksOptions = field(default_factory=BookmarksOptions)  # [modules.pubsub]
    avatar: AvatarOptions = field(default_factory=AvatarOptions)  # [modules.pubsub]


@dataclass(frozen=True, slots=True)
class HostConfig:
    """One virtual host (a domain served by this server)."""

    name: str
    modules: ModulesConfig = field(default_factory=ModulesConfig)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration."""

    server: ServerConfig
    hosts: tuple[HostConfig, ...]
    c2s: C2SConfig = field(default_factory=C2SConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    http: HttpConfig = field(default_factory=HttpConfig)  # [http]
    acme: AcmeConfig = field(default_factory=AcmeConfig)  # [acme]
    console: ConsoleConfig = field(default_factory=ConsoleConfig)  # [console]
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    source: Path | None = None

    def host(self, name: str) -> HostConfig | None:
        for host in self.hosts:
            if host.name == name:
                return host
        return None
