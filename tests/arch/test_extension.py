"""A new module with options and a store of its own plugs in through three places: its module file,
its store file (with its migration) and appliance/catalog.py. This test plays those three parts with a
small "notes" feature and checks that the schema, the reference, the loader, the migrations and
`ctx.store()` all pick it up without any change to config/, core/ or storage/ code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import apsw
import pytest

from appliance.catalog import BUILTIN, STORE_MIGRATIONS, STORES
from appliance.config import ConfigError, docs, parse_config
from appliance.config.options import schema
from appliance.core.api import Host, Int, Module, ModuleContext, option
from appliance.core.stores import Stores
from appliance.storage.migrate import Migration, load_migrations
from appliance.storage.sqlite import Database

# --- part 1: the module file (options, the store it needs, the module) ------------------------------


@dataclass(frozen=True, slots=True)
class NotesOptions:
    """Notes to self (an example feature)."""

    max_notes: int = option(100, Int(1, 10_000), "Most notes per account.")


class NotesStore(Protocol):
    async def add(self, user: str, text: str) -> int: ...


class Notes(Module):
    name = "notes"
    options = NotesOptions

    def setup(self, ctx: ModuleContext[NotesOptions]) -> None:
        self.limit = ctx.options.max_notes
        self.store = ctx.store(NotesStore)


# --- part 2: the store file (SQL and its migration, side by side) -----------------------------------

NEXT = len(load_migrations(extra=STORE_MIGRATIONS)) + 1
MIGRATIONS = (Migration(NEXT, "notes", "CREATE TABLE notes (username TEXT NOT NULL, body TEXT NOT NULL);"),)


class SqlNotesStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, user: str, text: str) -> int:
        def insert(conn: apsw.Connection) -> int:
            conn.execute("INSERT INTO notes VALUES (?, ?)", (user, text))
            return int(conn.execute("SELECT count(*) FROM notes WHERE username = ?", (user,)).fetchone()[0])

        return await self._db.write(insert)


# --- part 3: the catalog's three tuples, extended ---------------------------------------------------

MODULES = (*BUILTIN, Notes)
BINDINGS = (*STORES, (NotesStore, SqlNotesStore))
ALL_MIGRATIONS = (*STORE_MIGRATIONS, *MIGRATIONS)

MINIMAL = '[server]\nstate_dir = "/srv/parlour"\n\n[hosts."example.org"]\n'


def test_the_options_are_validated_documented_and_handed_to_the_module() -> None:
    config = parse_config(MINIMAL + "[modules.notes]\nmax_notes = 7\n", "parlour.toml", modules=MODULES)
    assert config.hosts[0].modules.of(NotesOptions) == NotesOptions(max_notes=7)
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL + "[modules.notes]\nmax_notez = 0\n", "parlour.toml", modules=MODULES)
    assert info.value.problems == [
        'parlour.toml:6: unknown key "modules.notes.max_notez"; did you mean "modules.notes.max_notes"?'
    ]
    text = docs.render(schema(MODULES))
    assert "### [modules.notes]\n\nNotes to self (an example feature)." in text
    assert "| `max_notes` | integer | `100` | 1 to 10000 | Most notes per account. |" in text


async def test_the_store_and_its_migration_reach_the_module(tmp_path: Path) -> None:
    config = parse_config(MINIMAL + "[modules.notes]\nmax_notes = 7\n", "parlour.toml", modules=MODULES)
    db = await Database.open(tmp_path / "parlour.db", store_migrations=ALL_MIGRATIONS)
    try:
        stores = Stores((kind, make(db)) for kind, make in BINDINGS)
        module = Notes()
        host = Host("example.org", config.hosts[0])
        ctx: ModuleContext[NotesOptions] = ModuleContext(
            module, host, config=config, iq_table=None, pending=None, router=None,  # type: ignore[arg-type]
            sessions=None, stores=stores, accounts=None, tasks=None,  # type: ignore[arg-type]
        )
        module.setup(ctx)
        assert module.limit == 7
        assert await module.store.add("romeo", "buy milk") == 1
        assert await module.store.add("romeo", "call juliet") == 2
    finally:
        await db.close()
