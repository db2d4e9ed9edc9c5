"""The one open database of an installation and the stores built on it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from appliance.core.stores import Stores
from appliance.platform.paths import database_path
from appliance.storage.sqlite import Database
from appliance.storage.stores.accounts import AccountStore
from appliance.storage.stores.archive import ArchiveStore
from appliance.storage.stores.blocklist import BlocklistStore
from appliance.storage.stores.kv import KeyValueStore
from appliance.storage.stores.muc import MucStore
from appliance.storage.stores.offline import OfflineStore
from appliance.storage.stores.pubsub import PubSubStore
from appliance.storage.stores.roster import RosterStore
from appliance.storage.uploads import UploadFiles


@dataclass(frozen=True, slots=True)
class Storage:
    """`<state_dir>/parlour.db` opened once, with every store on it; `close()` commits and closes."""

    db: Database
    stores: Stores

    @classmethod
    async def open(cls, state_dir: Path) -> Storage:
        state_dir.mkdir(parents=True, exist_ok=True)
        db = await Database.open(database_path(state_dir))
        stores = Stores(
            accounts=AccountStore(db),
            roster=RosterStore(db),
            offline=OfflineStore(db),
            kv=KeyValueStore(db),
            blocklist=BlocklistStore(db),
            muc=MucStore(db),
            pubsub=PubSubStore(db),
            archive=ArchiveStore(db),
            uploads=UploadFiles(state_dir / "uploads"),
        )
        return cls(db, stores)

    async def close(self) -> None:
        await self.db.close()


__all__ = ["Storage"]
