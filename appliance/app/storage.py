"""The one open database of an installation and the stores built on it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.catalog import open_database, open_stores
from appliance.config import Config
from appliance.config.model import StorageConfig
from appliance.core.stores import Stores
from appliance.platform.paths import database_path
from appliance.storage.workers import Database

if TYPE_CHECKING:
    from appliance.storage.transfer import SchemaStatus, TableCount


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


def database_status(config: Config) -> tuple[str, SchemaStatus]:
    """What `[storage]` names (without a password) and its schema version; raises when unreachable.
    Blocking (a CLI's call); psycopg is loaded only here and for a configured URL."""
    from appliance.storage.postgres import describe
    from appliance.storage.transfer import schema_status

    if config.storage.url:
        return describe(config.storage.url), schema_status(config.storage.url)
    path = database_path(config.server.state_dir)
    return f"SQLite database {path}", schema_status(path)


async def move_to_postgresql(source: Path, url: str) -> list[TableCount]:
    """`parlour db migrate`: copy the SQLite file into the empty PostgreSQL database, counts checked."""
    from appliance.storage.transfer import transfer

    return await transfer(source, url)


__all__ = ["Storage", "database_status", "move_to_postgresql"]
