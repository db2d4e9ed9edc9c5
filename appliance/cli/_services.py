"""Services the CLI opens on the state folder, the same ones the server and the web console use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from appliance.catalog import open_database
from appliance.config import Config
from appliance.core.accounts import AccountService
from appliance.storage.stores.accounts import AccountStore


@asynccontextmanager
async def open_accounts(config: Config) -> AsyncIterator[AccountService]:
    """An AccountService on `<state_dir>/parlour.db`, closed (all writes committed) on exit."""
    db = await open_database(config.server.state_dir)
    try:
        yield AccountService(AccountStore(db), iterations=config.limits.scram_iterations)
    finally:
        await db.close()
