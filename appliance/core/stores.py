"""The storage services of one installation, each found by the Protocol type it implements.

A module asks for what it needs by type, `ctx.store(RosterStore)`, with the Protocols of
`storage/api.py` (or one a module declares itself for a store of its own). The composition root builds
the registry from the catalog's store bindings, so a new store is added without touching this file.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, TypeVar, cast, overload

from appliance.storage.api import (
    AccountStore,
    AccountTransfer,
    ArchiveStore,
    BlocklistStore,
    KeyValueStore,
    MucStore,
    OfflineStore,
    PubSubStore,
    RosterStore,
    SharedGroupStore,
    UploadArea,
)

S = TypeVar("S")

__all__ = ["MissingStore", "Stores"]


class MissingStore(LookupError):
    """No store of the asked type was configured (a programming error of the catalog or a module)."""


class _Named(Generic[S]):
    """`stores.roster` for the core, the console and tests: the same as `stores.get(RosterStore)`."""

    __slots__ = ("kind",)

    def __init__(self, kind: type[S]) -> None:
        self.kind = kind

    @overload
    def __get__(self, stores: None, owner: type) -> _Named[S]: ...
    @overload
    def __get__(self, stores: Stores, owner: type) -> S: ...
    def __get__(self, stores: Stores | None, owner: type) -> S | _Named[S]:
        return self if stores is None else stores.get(self.kind)


class Stores:
    """Store instances keyed by the Protocol type they implement."""

    __slots__ = ("_by_type",)

    def __init__(self, stores: Iterable[tuple[type, object]]) -> None:
        self._by_type: dict[type, object] = {}
        for kind, store in stores:
            if kind in self._by_type:
                raise ValueError(f"two stores implement {kind.__name__}")
            self._by_type[kind] = store

    def get(self, kind: type[S]) -> S:
        try:
            return cast(S, self._by_type[kind])
        except KeyError:
            raise MissingStore(f"no store implements {kind.__name__}") from None

    def __contains__(self, kind: Any) -> bool:
        return kind in self._by_type

    accounts = _Named(AccountStore)
    roster = _Named(RosterStore)
    offline = _Named(OfflineStore)
    kv = _Named(KeyValueStore)
    blocklist = _Named(BlocklistStore)
    pubsub = _Named(PubSubStore)
    archive = _Named(ArchiveStore)
    uploads = _Named(UploadArea)
    muc = _Named(MucStore)
    shared_groups = _Named(SharedGroupStore)
    transfer = _Named(AccountTransfer)
