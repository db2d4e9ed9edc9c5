"""The bundle of storage services handed to modules (typed by the Protocols in storage.api)."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.storage.api import (
    AccountStore,
    ArchiveStore,
    BlocklistStore,
    KeyValueStore,
    MucStore,
    OfflineStore,
    PubSubStore,
    RosterStore,
    UploadArea,
)


@dataclass(frozen=True, slots=True)
class Stores:
    accounts: AccountStore
    roster: RosterStore
    offline: OfflineStore
    kv: KeyValueStore
    blocklist: BlocklistStore
    pubsub: PubSubStore
    archive: ArchiveStore
    uploads: UploadArea
    muc: MucStore
