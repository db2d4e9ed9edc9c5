"""The one open database of an installation and the stores built on it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from appliance.catalog import open_database, open_stores
from appliance.config.model import StorageConfig
from appliance.core.stores import Stores
from appliance.storage.workers import Database


@dataclass(frozen=True, slots=True)
class Storage:
    """The database of `[storage]` (`<state_dir>/parlour.db` by default) opened once, with every store on it;
    `close()` commits and closes."""

    db: Database
    stores: Stores

    @classmethod
    async def open(cls, state_dir: Path, storage: StorageConfig | None = None) -> Storage:
        state_dir.mkdir(parents=True, exist_ok=True)
        db = await open_database(state_dir, storage)
        return cls(db, open_stores(db, state_dir))

    async def close(self) -> None:
        await self.db.close()


__all__ = ["Storage"]
