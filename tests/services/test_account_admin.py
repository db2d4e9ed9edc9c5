"""AccountAdmin on a real SQLite store: refused passwords reach the administrator as `Refused`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance.core.accounts import AccountService
from appliance.core.sessions import SessionDirectory
from appliance.services.accounts import AccountAdmin
from appliance.services.errors import Refused
from appliance.storage.sqlite import Database
from appliance.storage.stores.accounts import AccountStore


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[AccountAdmin]:
    db = await Database.open(tmp_path / "parlour.db")
    try:
        accounts = AccountService(AccountStore(db), iterations=64)
        yield AccountAdmin(accounts, SessionDirectory(), ["example.test"], admins=None)
    finally:
        await db.close()


async def test_a_weak_password_is_refused_at_creation_and_at_reset(admin: AccountAdmin) -> None:
    with pytest.raises(Refused):
        await admin.create("test", "alice@example.test", "short")
    assert await admin.users() == []
    await admin.create("test", "alice@example.test", "a good long password")
    with pytest.raises(Refused):
        await admin.reset_password("test", "alice@example.test", "short")
    assert await admin.users() == ["alice@example.test"]
