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
