"""Typed storage interfaces: the records and store Protocols the rest of Parlour programs against.

Users are addressed by ``(host, username)`` in their prepared (RFC 7622) form. Every method is async;
implementations live in ``storage/stores/`` and never run SQL on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

HASH_NAMES: tuple[str, ...] = ("SHA-1", "SHA-256", "SHA-512")
SUBSCRIPTIONS: frozenset[str] = frozenset({"none", "to", "from", "both"})


class StorageError(Exception):
    """Base class for storage failures callers are expected to handle."""


class AlreadyExists(StorageError):
    """The record to create is already there (e.g. an account)."""


class UnknownAccount(StorageError):
    """Per-user data was written for an account that does not exist."""


@dataclass(frozen=True, slots=True)
class ScramKeys:
    """SCRAM credentials for one hash (RFC 5802): never the password itself."""

    hash_name: str
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    def __post_init__(self) -> None:
        if self.hash_name not in HASH_NAMES:
            raise ValueError(f"unsupported SCRAM hash {self.hash_name!r}; expected one of {HASH_NAMES}")
        if self.iterations < 1:
            raise ValueError("SCRAM iterations must be positive")


@dataclass(frozen=True, slots=True)
class RosterItem:
    """One contact on a user's roster (RFC 6121 §2.1)."""

    contact: str
    name: str | None = None
    subscription: str = "none"
    ask: bool = False  # our outbound subscription request is pending
    approved: bool = False  # the contact's inbound subscription is pre-approved
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.subscription not in SUBSCRIPTIONS:
            raise ValueError(f"roster subscription {self.subscription!r} is not one of none, to, from, both")


@dataclass(frozen=True, slots=True)
class OfflineMessage:
    """A stanza stored for a user who was offline; ``id`` increases with arrival order."""

    id: int
    stanza: bytes
    stored_at: float


@runtime_checkable
class AccountStore(Protocol):
    """Accounts and their SCRAM keys."""

    async def create(self, host: str, username: str, keys: list[ScramKeys]) -> None:
        """Create an account; raises ``AlreadyExists``."""
        ...

    async def create_many(self, host: str, items: list[tuple[str, list[ScramKeys]]]) -> None:
        """Create many accounts in one transaction; all or none (raises ``AlreadyExists``)."""
        ...

    async def delete(self, host: str, username: str) -> bool:
        """Delete an account and all its data; False when it did not exist."""
        ...

    async def provision(self, host: str, username: str, dn: str) -> bool:
        """Make sure an account the directory authenticates exists (without keys: its password stays in
        the directory) and remember its entry's DN; True when the account was created now."""
        ...

    async def directory_dn(self, host: str, username: str) -> str | None:
        """The directory entry of an account the directory authenticates; None for a local account."""
        ...

    async def exists(self, host: str, username: str) -> bool: ...

    async def get_keys(self, host: str, username: str, hash_name: str) -> ScramKeys | None: ...

    async def set_keys(self, host: str, username: str, keys: list[ScramKeys]) -> bool:
        """Replace all SCRAM keys of an account; False when it does not exist."""
        ...

    async def list_users(
        self, host: str, *, prefix: str = "", limit: int = 1000, offset: int = 0
    ) -> list[str]:
        """Usernames on ``host`` in sorted order."""
        ...

    async def count(self, host: str) -> int: ...

    async def set_disabled(self, host: str, username: str, disabled: bool) -> bool:
        """Disable (no login) or re-enable an account; False when it does not exist."""
        ...

    async def is_disabled(self, host: str, username: str) -> bool: ...

    async def disabled(self, host: str) -> list[str]:
        """The disabled usernames on ``host``, sorted."""
        ...


@runtime_checkable
class HostValueStore(Protocol):
    """Small per-host documents (the message of the day), by store name and key."""

    async def get(self, host: str, store: str, key: str) -> bytes | None: ...

    async def put(self, host: str, store: str, key: str, value: bytes) -> None: ...

    async def delete(self, host: str, store: str, key: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class SharedGroup:
    """A shared-roster group of one host: its members see each other on their rosters, with presence."""

    host: str
    name: str
    everyone: bool = False  # every account of the host is a member
    directory_group: str = ""  # the DN of an LDAP group whose members are members
    members: tuple[str, ...] = ()  # usernames added by an administrator, sorted


@runtime_checkable
class SharedGroupStore(Protocol):
    """Shared-roster groups and their members, by (host, group name)."""

    async def groups(self, host: str) -> list[SharedGroup]:
        """Every group of ``host`` with its members, by name."""
        ...

    async def create(self, group: SharedGroup) -> None:
        """Create a group (its members too); raises ``AlreadyExists`` or ``UnknownAccount``."""
        ...

    async def rename(self, host: str, name: str, new_name: str) -> bool:
        """Rename a group; False when it does not exist, ``AlreadyExists`` when the new name is taken."""
        ...

    async def update(self, host: str, name: str, *, everyone: bool, directory_group: str) -> bool:
        """Change what makes accounts members besides the listed ones; False when the group is absent."""
        ...

    async def delete(self, host: str, name: str) -> bool: ...

    async def add_member(self, host: str, name: str, username: str) -> bool:
        """Add an account; False when the group does not exist; raises ``UnknownAccount``."""
        ...

    async def remove_member(self, host: str, name: str, username: str) -> bool: ...


@runtime_checkable
class RosterStore(Protocol):
    """Roster items plus a per-user version counter (XEP-0237 roster versioning)."""

    async def items(self, host: str, user: str) -> list[RosterItem]: ...

    async def item(self, host: str, user: str, contact: str) -> RosterItem | None: ...

    async def put(self, host: str, user: str, item: RosterItem) -> int:
        """Insert or replace an item; returns the new roster version."""
        ...

    async def remove(self, host: str, user: str, contact: str) -> int | None:
        """Remove an item; returns the new roster version, None when it was absent."""
        ...

    async def version(self, host: str, user: str) -> int:
        """Current roster version, 0 for a roster never written."""
        ...

    async def count(self, host: str, user: str) -> int: ...


@runtime_checkable
class OfflineStore(Protocol):
    """Stanzas held for offline users."""

    async def push(self, host: str, user: str, stanza: bytes, limit: int) -> bool:
        """Store a stanza; False (nothing stored) when the user already has ``limit`` messages."""
        ...

    async def fetch(self, host: str, user: str) -> list[OfflineMessage]:
        """All stored messages, oldest first."""
        ...

    async def delete(self, host: str, user: str, ids: list[int]) -> None: ...

    async def count(self, host: str, user: str) -> int: ...


@runtime_checkable
class KeyValueStore(Protocol):
    """Small per-user documents grouped by store name (private XML, vCard, last activity …)."""

    async def get(self, host: str, user: str, store: str, key: str) -> bytes | None: ...

    async def put(self, host: str, user: str, store: str, key: str, value: bytes) -> None: ...

    async def delete(self, host: str, user: str, store: str, key: str) -> bool: ...

    async def all(self, host: str, user: str, store: str) -> dict[str, bytes]: ...


@runtime_checkable
class BlocklistStore(Protocol):
    """Blocked JIDs per user (XEP-0191)."""

    async def items(self, host: str, user: str) -> list[str]: ...

    async def add(self, host: str, user: str, jids: list[str]) -> None: ...

    async def remove(self, host: str, user: str, jids: list[str]) -> None: ...

    async def clear(self, host: str, user: str) -> None: ...


# --- pubsub (XEP-0060 nodes for the pubsub service and PEP) ---


@dataclass(frozen=True, slots=True)
class PubSubNode:
    """A node of a pubsub service; ``config`` is the JSON of its pubsub#node_config values."""

    service: str
    node: str
    config: str
    created_at: float


@dataclass(frozen=True, slots=True)
class PubSubSubscription:
    """One entity's subscription to a node; ``options`` is the JSON of its subscribe options."""

    node: str
    jid: str
    subid: str
    state: str  # subscribed, pending or unconfigured
    options: str = "{}"


@dataclass(frozen=True, slots=True)
class PubSubItem:
    """A published item: its id, the publisher's JID and the serialized payload (may be empty)."""

    node: str
    item_id: str
    publisher: str
    payload: bytes
    published_at: float


@runtime_checkable
class PubSubStore(Protocol):
    """Nodes, affiliations, subscriptions and items, addressed by (service, node)."""

    async def node(self, service: str, node: str) -> PubSubNode | None: ...

    async def nodes(self, service: str) -> list[PubSubNode]: ...

    async def create_node(self, service: str, node: str, config: str, owner: str) -> None:
        """Create a node with `owner` as its owner; raises ``AlreadyExists``."""
        ...

    async def configure_node(self, service: str, node: str, config: str) -> bool: ...

    async def delete_node(self, service: str, node: str) -> bool:
        """Delete a node with its affiliations, subscriptions and items."""
        ...

    async def delete_service(self, service: str) -> int:
        """Delete every node of a service (an account's PEP nodes); returns how many."""
        ...

    async def affiliations(self, service: str, node: str) -> dict[str, str]: ...

    async def affiliations_of(self, service: str, jid: str) -> dict[str, str]:
        """Node → affiliation of one bare JID across a service."""
        ...

    async def set_affiliation(self, service: str, node: str, jid: str, affiliation: str) -> None:
        """Set an affiliation; "none" removes it."""
        ...

    async def subscriptions(self, service: str, node: str) -> list[PubSubSubscription]: ...

    async def subscriptions_of(self, service: str, jid: str) -> list[PubSubSubscription]:
        """Subscriptions of one JID (and, for a bare JID, its full JIDs) across a service."""
        ...

    async def put_subscription(self, service: str, sub: PubSubSubscription) -> None: ...

    async def delete_subscription(self, service: str, node: str, jid: str) -> bool: ...

    async def put_item(self, service: str, item: PubSubItem, max_items: int) -> list[str]:
        """Store (or replace) an item as the newest; drop the oldest beyond `max_items` and return
        their ids."""
        ...

    async def items(
        self, service: str, node: str, *, limit: int | None = None, ids: list[str] | None = None
    ) -> list[PubSubItem]:
        """Items newest first: the `limit` newest, or those with the given ids."""
        ...

    async def delete_item(self, service: str, node: str, item_id: str) -> bool: ...

    async def purge(self, service: str, node: str) -> int: ...
# --- end pubsub ---


# --- archive (XEP-0313 message archives, XEP-0441 preferences) ---

ARCHIVE_MODES: tuple[str, ...] = ("always", "never", "roster")


class UnknownArchiveId(StorageError):
    """A query named an archive id (RSM before/after, before-id/after-id) the archive does not hold."""


@dataclass(frozen=True, slots=True)
class ArchivedMessage:
    """One archived stanza; ``archive_id`` is its XEP-0359 stanza-id in the owner's archive."""

    archive_id: str
    with_jid: str
    stamp: float
    stanza: bytes


@dataclass(frozen=True, slots=True)
class ArchiveFilter:
    """Which messages of an archive a query is about (XEP-0313 §4.1); None means "no condition"."""

    with_jid: str | None = None  # bare JID of the other party
    with_resource: str | None = None  # with a full JID in 'with': also its resource
    start: float | None = None
    end: float | None = None
    after_id: str | None = None  # exclusive (urn:xmpp:mam:2#extended)
    before_id: str | None = None  # exclusive
    ids: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ArchivePage:
    """One RSM page (XEP-0059), oldest first: ``first_index`` is the position of ``items[0]`` in the
    whole result set of ``count`` messages; ``complete`` says the page reaches the end in the direction
    of paging."""

    items: list[ArchivedMessage]
    count: int
    first_index: int
    complete: bool


@dataclass(frozen=True, slots=True)
class ArchivePrefs:
    """Archiving preferences (XEP-0441): a default mode and JIDs always or never archived."""

    default: str = "always"
    always: tuple[str, ...] = ()
    never: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.default not in ARCHIVE_MODES:
            raise ValueError(f"archive default {self.default!r} is not one of {', '.join(ARCHIVE_MODES)}")


@runtime_checkable
class ArchiveStore(Protocol):
    """Message archives keyed by an owner JID (an account's bare JID, later a MUC room)."""

    async def append(
        self, owner: str, archive_id: str, with_jid: str, with_resource: str, stamp: float, stanza: bytes
    ) -> None:
        """Archive one stanza as the newest of ``owner``'s archive (durable when this returns)."""
        ...

    async def page(
        self, owner: str, where: ArchiveFilter, *, limit: int, after: str | None = None,
        before: str | None = None,
    ) -> ArchivePage:
        """A page of at most ``limit`` messages: the first ones, those right after ``after``, or those
        right before ``before`` ("" means the last page). Raises ``UnknownArchiveId``."""
        ...

    async def bounds(self, owner: str) -> tuple[ArchivedMessage | None, ArchivedMessage | None]:
        """The oldest and the newest message of an archive (None, None when empty)."""
        ...

    async def purge_before(self, stamp: float) -> int:
        """Delete every message archived before ``stamp`` (retention); returns how many."""
        ...

    async def replace(self, owner: str, archive_id: str, stanza: bytes) -> bool:
        """Overwrite one archived stanza (a moderation tombstone, XEP-0425); False when not there."""
        ...

    async def delete_owner(self, owner: str) -> int:
        """Delete an owner's archive and preferences; returns how many messages."""
        ...

    async def prefs(self, owner: str) -> ArchivePrefs | None: ...

    async def set_prefs(self, owner: str, prefs: ArchivePrefs) -> None: ...


# --- muc (XEP-0045 rooms that outlive their occupants) ---


@dataclass(frozen=True, slots=True)
class MucAffiliation:
    """A bare JID's standing in a room, with its registered nickname and the reason given."""

    jid: str
    affiliation: str  # owner, admin, member or outcast
    nick: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class MucRoom:
    """A persistent room: ``config`` is the JSON of its configuration."""

    service: str
    name: str
    config: str
    subject: str = ""
    subject_by: str = ""
    created_at: float = 0.0
    affiliations: tuple[MucAffiliation, ...] = ()


@runtime_checkable
class MucStore(Protocol):
    """Persistent rooms of a chat service, addressed by (service, room name)."""

    async def rooms(self, service: str) -> list[MucRoom]:
        """Every stored room of a service with its affiliations, by name."""
        ...

    async def room(self, service: str, name: str) -> MucRoom | None: ...

    async def save(self, room: MucRoom) -> None:
        """Insert or replace a room with all its affiliations."""
        ...

    async def set_subject(self, service: str, name: str, subject: str, by: str) -> None: ...

    async def set_affiliation(self, service: str, name: str, item: MucAffiliation) -> None:
        """Set one affiliation; "none" removes it (and its registered nickname)."""
        ...

    async def delete(self, service: str, name: str) -> bool: ...

    async def owned_by(self, service: str, jid: str) -> list[str]:
        """Names of the rooms where `jid` is an owner."""
        ...


# --- portable accounts (XEP-0227 export and import) ---


@dataclass(frozen=True, slots=True)
class PortableNode:
    """A PEP node of an account: its configuration JSON (``{}``: the PEP defaults) and items, oldest first."""

    node: str
    config: str = "{}"
    items: tuple[PubSubItem, ...] = ()


@dataclass(frozen=True, slots=True)
class PortableMessage:
    """One archived message of an account, with the fields the archive indexes."""

    archive_id: str
    with_jid: str
    with_resource: str
    stamp: float
    stanza: bytes


@dataclass(frozen=True, slots=True)
class PortableAccount:
    """Everything of one account that moves between servers. ``documents`` are key-value rows
    ``(store, key, value)`` (vCard, private XML, pending subscription requests); offline ids are ignored
    on import."""

    keys: tuple[ScramKeys, ...] = ()
    roster: tuple[RosterItem, ...] = ()
    documents: tuple[tuple[str, str, bytes], ...] = ()
    offline: tuple[OfflineMessage, ...] = ()
    pep: tuple[PortableNode, ...] = ()
    archive: tuple[PortableMessage, ...] = ()


@dataclass(frozen=True, slots=True)
class ImportCounts:
    """What an import added to one account; whatever was there already is kept and not counted."""

    created: bool = False  # the account is new (with the given keys); False: it existed, its keys kept
    roster: int = 0
    documents: int = 0
    offline: int = 0
    pep_nodes: int = 0
    pep_items: int = 0
    archive: int = 0


@runtime_checkable
class AccountTransfer(Protocol):
    """Whole accounts in and out, one account per transaction (XEP-0227 export and import)."""

    async def export_account(self, host: str, username: str, *, stores: tuple[str, ...]) -> PortableAccount | None:
        """One consistent snapshot of an account, with the key-value rows of ``stores``; None when absent."""
        ...

    async def import_account(self, host: str, username: str, account: PortableAccount) -> ImportCounts:
        """Add an account's data in one transaction, all or nothing: creates the account (with
        ``account.keys``) when absent, and adds only what it does not hold yet, so importing twice adds
        nothing the second time. Raises ``UnknownAccount`` for a new account without keys."""
        ...


# --- uploads (XEP-0363 files in the state folder) ---


@dataclass(frozen=True, slots=True)
class Invitation:
    """An invitation (XEP-0401): who may redeem it how often until when, and what a new account gets.

    `digest` is the SHA-256 of the token (the token itself is never stored); `inviter` becomes a mutual
    contact of every account made with it ("" none), in the roster `groups`; `username` is the one name
    it may create, reserved until it expires ("" any name).
    """

    id: str
    digest: str
    host: str
    creator: str
    expires: float
    created: float = 0.0
    inviter: str = ""
    username: str = ""
    groups: tuple[str, ...] = ()
    max_uses: int = 1
    uses: int = 0
    used_by: tuple[str, ...] = ()

    def valid(self, now: float) -> bool:
        return self.uses < self.max_uses and now < self.expires


@runtime_checkable
class InvitationStore(Protocol):
    """Invitations; `claim` takes one use atomically, whatever runs at the same time."""

    async def create(self, invitation: Invitation) -> None: ...

    async def find(self, digest: str) -> Invitation | None: ...

    async def list(self, host: str | None = None) -> list[Invitation]:
        """Newest first, with the accounts made from each."""
        ...

    async def claim(self, digest: str, jid: str, now: float) -> Invitation | None:
        """Take one use for `jid` if the invitation is valid at `now`; None (nothing taken) otherwise."""
        ...

    async def release(self, invitation_id: str, jid: str) -> None:
        """Give back the use `jid` claimed (its account could not be made)."""
        ...

    async def delete(self, invitation_id: str) -> bool: ...

    async def reserved(self, host: str, username: str, now: float) -> bool:
        """True when a valid invitation keeps `username` on `host` for its invitee."""
        ...


@dataclass(frozen=True, slots=True)
class UploadSlot:
    """One reserved or finished upload."""

    owner: str
    slot: str
    name: str
    size: int
    content_type: str
    created: float  # when reserved; when uploaded once the file is there
    uploaded: bool = False

    @property
    def path(self) -> str:
        """The URL path below /upload/."""
        return f"{self.owner}/{self.slot}"


@runtime_checkable
class UploadArea(Protocol):
    """Upload slots and files; the web side stores and serves the bytes of the same folder."""

    def signature(self, slot: UploadSlot, expires: int) -> str:
        """The signature a PUT URL for `slot` carries, valid until `expires` (seconds since the epoch)."""
        ...

    async def reserve(
        self, account: str, name: str, size: int, content_type: str, now: float, quota: int
    ) -> UploadSlot | None:
        """Reserve a slot for `account` (bare JID); None when it would exceed `quota` bytes."""
        ...

    async def purge(self, now: float, expiry: float, slot_lifetime: float) -> int:
        """Delete files older than `expiry` (0: never) and slots never used within `slot_lifetime`."""
        ...
