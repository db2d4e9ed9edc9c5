"""AccountService over a real SQLite AccountStore."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance.core import accounts as accounts_module
from appliance.core.accounts import AccountExists, AccountNotFound, AccountService, WeakPassword
from appliance.storage.api import ScramKeys
from appliance.storage.sqlite import Database
from appliance.storage.stores.accounts import AccountStore
from appliance.xmpp.jid import JID
from appliance.xmpp.sasl import scram

ROMEO = JID.parse("romeo@a.example")
PASSWORD = "correct horse battery"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "parlour.db")
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def service(db: Database) -> AccountService:
    return AccountService(AccountStore(db), iterations=64)


async def test_create_stores_scram_keys_for_every_hash(service: AccountService) -> None:
    await service.create(ROMEO, PASSWORD)
    assert await service.exists(ROMEO)
    salts = set()
    for hash_name in ("SHA-1", "SHA-256", "SHA-512"):
        keys = await service.scram_keys(ROMEO, hash_name)
        assert keys is not None and keys.iterations == 64 and len(keys.salt) >= 16
        assert (keys.stored_key, keys.server_key) == scram.derive_keys(PASSWORD, hash_name, keys.salt, 64)
        salts.add(keys.salt)
    assert len(salts) == 3


async def test_password_is_never_written(tmp_path: Path, service: AccountService, db: Database) -> None:
    await service.create(ROMEO, PASSWORD)
    await service.set_password(JID.parse("romeo@a.example"), "another secret")
    await db.close()
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"romeo" in on_disk
    assert PASSWORD.encode() not in on_disk and b"another secret" not in on_disk


async def test_verify_plain(service: AccountService) -> None:
    await service.create(ROMEO, PASSWORD)
    assert await service.verify_plain(ROMEO, PASSWORD)
    assert await service.verify_plain(JID.parse("Romeo@A.Example/phone"), PASSWORD)  # prepared, bare
    assert not await service.verify_plain(ROMEO, PASSWORD + "!")
    assert not await service.verify_plain(ROMEO, "")
    assert not await service.verify_plain(JID.parse("juliet@a.example"), PASSWORD)
    assert not await service.verify_plain(JID.parse("a.example"), PASSWORD)


async def test_plain_checks_an_imported_sha1_only_account_and_then_completes_its_keys(db: Database) -> None:
    """An account imported from Prosody or ejabberd holds SCRAM-SHA-1 keys only (XEP-0227): PLAIN checks the
    password against them, and the first success derives every hash, so SCRAM-SHA-256 works from then on."""
    store = AccountStore(db)
    service = AccountService(store, iterations=64)
    salt = b"imported-salt"
    stored, server = scram.derive_keys(PASSWORD, "SHA-1", salt, 4096)
    await store.create("a.example", "romeo", [ScramKeys("SHA-1", salt, 4096, stored, server)])
    assert not await service.verify_plain(ROMEO, PASSWORD + "!")
    assert await service.scram_keys(ROMEO, "SHA-256") is None  # a wrong password changes nothing
    assert await service.verify_plain(ROMEO, PASSWORD)
    for hash_name in ("SHA-1", "SHA-256", "SHA-512"):
        keys = await service.scram_keys(ROMEO, hash_name)
        assert keys is not None and keys.iterations == 64
        assert keys.stored_key == scram.derive_keys(PASSWORD, hash_name, keys.salt, 64)[0]
    assert await service.verify_plain(ROMEO, PASSWORD)


async def test_unknown_user_still_costs_a_derivation_and_dear_ones_run_off_the_loop(
    db: Database, service: AccountService, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, int, int]] = []
    real = scram.derive_keys

    def spy(password: str, hash_name: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
        calls.append((hash_name, iterations, threading.get_ident()))
        return real(password, hash_name, salt, iterations)

    monkeypatch.setattr(accounts_module.scram, "derive_keys", spy)
    loop_thread = threading.get_ident()
    assert not await service.verify_plain(JID.parse("nobody@a.example"), PASSWORD)
    # one cheap derivation (64 rounds here): on the loop, cheaper than a thread hop
    assert calls == [("SHA-256", 64, loop_thread)]
    await service.create(ROMEO, PASSWORD)  # three derivations: always in a worker thread
    assert sorted(h for h, _, _ in calls[1:]) == ["SHA-1", "SHA-256", "SHA-512"]
    assert all(thread != loop_thread for _, _, thread in calls[1:])

    dear = AccountService(AccountStore(db), iterations=accounts_module.INLINE_ITERATIONS + 1)
    calls.clear()
    assert not await dear.verify_plain(JID.parse("nobody@a.example"), PASSWORD)
    assert [(h, i) for h, i, _ in calls] == [("SHA-256", accounts_module.INLINE_ITERATIONS + 1)]
    assert calls[0][2] != loop_thread


async def test_duplicate_create(service: AccountService) -> None:
    await service.create(ROMEO, PASSWORD)
    with pytest.raises(AccountExists):
        await service.create(JID.parse("ROMEO@a.example/x"), "whatever123")
    assert await service.verify_plain(ROMEO, PASSWORD)  # the first password stays


async def test_concurrent_creates_one_wins(service: AccountService) -> None:
    results = await asyncio.gather(
        *(service.create(ROMEO, f"password-{i}") for i in range(4)), return_exceptions=True
    )
    assert results.count(None) == 1
    assert all(isinstance(r, AccountExists) for r in results if r is not None)


@pytest.mark.parametrize("password", ["", "short", "1234567", "\x07\x07\x07\x07\x07\x07\x07\x07\x07"])
async def test_weak_passwords_are_refused(service: AccountService, password: str) -> None:
    with pytest.raises(WeakPassword):
        await service.create(ROMEO, password)
    assert not await service.exists(ROMEO)


async def test_minimum_length_is_configurable(db: Database) -> None:
    service = AccountService(AccountStore(db), iterations=64, min_password_length=3)
    await service.create(ROMEO, "abc")
    with pytest.raises(WeakPassword):
        await service.set_password(ROMEO, "ab")
    with pytest.raises(WeakPassword):
        await AccountService(AccountStore(db), iterations=64, min_password_length=0).set_password(ROMEO, "")


async def test_set_password_replaces_keys(service: AccountService) -> None:
    await service.create(ROMEO, PASSWORD)
    old = await service.scram_keys(ROMEO, "SHA-256")
    await service.set_password(ROMEO, "new password")
    new = await service.scram_keys(ROMEO, "SHA-256")
    assert old is not None and new is not None and old.salt != new.salt
    assert await service.verify_plain(ROMEO, "new password")
    assert not await service.verify_plain(ROMEO, PASSWORD)
    with pytest.raises(AccountNotFound):
        await service.set_password(JID.parse("juliet@a.example"), "new password")


async def test_delete(service: AccountService) -> None:
    await service.create(ROMEO, PASSWORD)
    await service.delete(ROMEO)
    assert not await service.exists(ROMEO)
    assert await service.scram_keys(ROMEO, "SHA-256") is None
    with pytest.raises(AccountNotFound):
        await service.delete(ROMEO)


async def test_account_needs_a_localpart(service: AccountService) -> None:
    with pytest.raises(ValueError):
        await service.create(JID.parse("a.example"), PASSWORD)


async def test_create_many_and_list(service: AccountService) -> None:
    await service.create_many("A.Example", [(f"User{i}", f"password{i}") for i in range(20)])
    assert await service.count("a.example") == 20
    assert await service.list("a.example", prefix="user1") == ["user1"] + [f"user1{i}" for i in range(10)]
    assert await service.verify_plain(JID.parse("user7@a.example"), "password7")
    with pytest.raises(AccountExists):
        await service.create_many("a.example", [("fresh", "password!"), ("user3", "password!")])
    assert not await service.exists(JID.parse("fresh@a.example"))
    with pytest.raises(WeakPassword):
        await service.create_many("a.example", [("other", "x")])


async def test_verified_password_cache_never_accepts_a_wrong_password(tmp_path) -> None:
    """A cached successful login does not make a different password pass, and a change invalidates it."""
    from appliance.core.accounts import AccountService
    from appliance.storage.sqlite import Database
    from appliance.storage.stores.accounts import AccountStore
    from appliance.xmpp.jid import JID

    db = await Database.open(tmp_path / "db" / "parlour.db")
    try:
        service = AccountService(AccountStore(db), iterations=64)
        jid = JID.parse("cache@example.org")
        await service.create(jid, "first password")
        assert await service.verify_plain(jid, "first password")
        assert await service.verify_plain(jid, "first password")  # served from the cache
        assert not await service.verify_plain(jid, "second password")
        await service.set_password(jid, "second password")
        assert not await service.verify_plain(jid, "first password")
        assert await service.verify_plain(jid, "second password")
    finally:
        await db.close()
