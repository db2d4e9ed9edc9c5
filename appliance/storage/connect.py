"""Open the database a location names: a file path (embedded SQLite) or a ``postgresql://`` URL."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from appliance.storage.migrate import Migration
from appliance.storage.workers import Database


def is_postgres(location: str | os.PathLike[str]) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) URL."""
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


async def open_database(
    location: str | os.PathLike[str], *, pool_size: int = 5, store_migrations: Sequence[Migration] = ()
) -> Database:
    """Open and migrate the database at ``location``; psycopg is imported only for a URL, whose pool is
    ``pool_size`` connections (one writer, the rest readers)."""
    if is_postgres(location):
        from appliance.storage.postgres import open_postgres

        return await open_postgres(str(location), readers=max(1, pool_size - 1), store_migrations=store_migrations)
    from appliance.storage.sqlite import Database as SQLite

    return await SQLite.open(Path(location), store_migrations=store_migrations)
