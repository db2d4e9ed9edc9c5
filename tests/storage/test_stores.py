"""Behaviour of each SQL store against a real database file."""

from __future__ import annotations

import asyncio

import pytest

from appliance.storage import api
from appliance.storage.api import AlreadyExists, RosterItem, ScramKeys, UnknownAccount
from appliance.storage.sqlite import Database
from appliance.storage.stores.accounts import AccountStore
from appliance.storage.stores.blocklist import BlocklistStore
from appliance.storage.stores.host_kv import HostValueStore
from appliance.storage.stores.kv import KeyValueStore
from appliance.storage.stores.offline import OfflineStore
from appliance.storage.stores.roster import RosterStore

H = "a.example"


def keys(hash_name: str = "SHA-256", seed: bytes = b"x") -> ScramKeys:
    return ScramKeys(hash_name, seed * 16, 4096, seed * 32, seed[::-1] * 32)


def all_keys(seed: bytes = b"x") -> list[ScramKeys]:
    return [keys(h, seed) for h in api.HASH_NAMES]


@pytest.fixture
async def accounts(db: Database) -> AccountStore:
    store = AccountStore(db)
    await store.create(H, "romeo", all_keys())
    return store


def test_implementations_satisfy_the_protocols(db: Database) -> None:
    assert isinstance(AccountStore(db), api.AccountStore)
    assert isinstance(RosterStore(db), api.RosterStore)
    assert isinstance(OfflineStore(db), api.OfflineStore)
    assert isinstance(KeyValueStore(db), api.KeyValueStore)
    assert isinstance(BlocklistStore(db), api.BlocklistStore)
    assert isinstance(HostValueStore(db), api.HostValueStore)


def test_records_validate() -> None:
    with pytest.raises(ValueError):
        RosterItem("juliet@a.example", subscription="maybe")
    with pytest.raises(ValueError):
        ScramKeys("MD5", b"s", 1, b"", b"")


# accounts


async def test_account_lifecycle(accounts: AccountStore) -> None:
    assert await accounts.exists(H, "romeo")
    assert not await accounts.exists(H, "juliet")
    assert not await accounts.exists("b.example", "romeo")
    with pytest.raises(AlreadyExists):
        await accounts.create(H, "romeo", all_keys())
    assert await accounts.get_keys(H, "romeo", "SHA-512") == keys("SHA-512")
    assert await accounts.get_keys(H, "juliet", "SHA-512") is None
    assert await accounts.set_keys(H, "romeo", [keys("SHA-1", b"y")])
    assert await accounts.get_keys(H, "romeo", "SHA-1") == keys("SHA-1", b"y")
    assert await accounts.get_keys(H, "romeo", "SHA-256") is None  # replaced, not merged
    assert not await accounts.set_keys(H, "juliet", all_keys())
    assert await accounts.delete(H, "romeo")
    assert not await accounts.delete(H, "romeo")
    assert not await accounts.exists(H, "romeo")


async def test_disabling_an_account_keeps_it(accounts: AccountStore) -> None:
    assert not await accounts.is_disabled(H, "romeo")
    assert await accounts.set_disabled(H, "romeo", True)
    assert await accounts.set_disabled(H, "romeo", True)  # twice is still once
    assert await accounts.is_disabled(H, "romeo") and await accounts.disabled(H) == ["romeo"]
    assert await accounts.exists(H, "romeo") and await accounts.get_keys(H, "romeo", "SHA-1") == keys("SHA-1")
    assert not await accounts.set_disabled(H, "juliet", True)
    assert await accounts.set_disabled(H, "romeo", False)
    assert not await accounts.is_disabled(H, "romeo") and await accounts.disabled(H) == []
    await accounts.set_disabled(H, "romeo", True)
    await accounts.delete(H, "romeo")
    await accounts.create(H, "romeo", all_keys())  # a new account under that name starts enabled
    assert not await accounts.is_disabled(H, "romeo")


async def test_host_documents(db: Database) -> None:
    store = HostValueStore(db)
    assert await store.get(H, "motd", "current") is None
    await store.put(H, "motd", "current", b"one")
    await store.put(H, "motd", "current", b"two")
    assert await store.get(H, "motd", "current") == b"two"
    assert await store.get("b.example", "motd", "current") is None
    assert await store.delete(H, "motd", "current")
    assert not await store.delete(H, "motd", "current")


async def test_list_and_count(db: Database) -> None:
    accounts = AccountStore(db)
    names = [f"user{i:03d}" for i in range(30)] + ["admin", "under_score", "under%cent"]
    await accounts.create_many(H, [(n, [keys()]) for n in names])
    await accounts.create("b.example", "other", [keys()])
    assert await accounts.count(H) == 33
    assert await accounts.count("b.example") == 1
    assert await accounts.list_users(H, limit=3) == ["admin", "under%cent", "under_score"]
    assert await accounts.list_users(H, prefix="user01") == [f"user01{i}" for i in range(10)]
    assert await accounts.list_users(H, prefix="under_") == ["under_score"]  # no LIKE wildcards
    assert await accounts.list_users(H, prefix="user", limit=2, offset=5) == ["user005", "user006"]


async def test_create_many_is_all_or_nothing(accounts: AccountStore) -> None:
    with pytest.raises(AlreadyExists):
        await accounts.create_many(H, [("juliet", [keys()]), ("romeo", [keys()])])
    with pytest.raises(AlreadyExists):
        await accounts.create_many(H, [("juliet", [keys()]), ("juliet", [keys()])])
    assert not await accounts.exists(H, "juliet")


async def test_concurrent_create_only_one_wins(db: Database) -> None:
    accounts = AccountStore(db)
    results = await asyncio.gather(
        *(accounts.create(H, "x", [keys()]) for _ in range(5)), return_exceptions=True
    )
    assert results.count(None) == 1
    assert all(isinstance(r, AlreadyExists) for r in results if r is not None)


async def test_deleting_an_account_deletes_its_data(db: Database, accounts: AccountStore) -> None:
    roster, offline, kv, blocks = RosterStore(db), OfflineStore(db), KeyValueStore(db), BlocklistStore(db)
    await accounts.create(H, "juliet", all_keys())
    for user in ("romeo", "juliet"):
        await roster.put(H, user, RosterItem("nurse@a.example"))
        await offline.push(H, user, b"<message/>", 10)
        await kv.put(H, user, "vcard", "", b"<vCard/>")
        await blocks.add(H, user, ["tybalt@a.example"])

    assert await accounts.delete(H, "romeo")

    assert await roster.items(H, "romeo") == [] and await roster.version(H, "romeo") == 0
    assert await offline.count(H, "romeo") == 0
    assert await kv.all(H, "romeo", "vcard") == {}
    assert await blocks.items(H, "romeo") == []
    assert await accounts.get_keys(H, "romeo", "SHA-256") is None
    # juliet is untouched
    assert await roster.count(H, "juliet") == 1
    assert await offline.count(H, "juliet") == 1
    assert await kv.get(H, "juliet", "vcard", "") == b"<vCard/>"
    assert await blocks.items(H, "juliet") == ["tybalt@a.example"]


async def test_user_data_needs_an_account(db: Database) -> None:
    with pytest.raises(UnknownAccount):
        await RosterStore(db).put(H, "ghost", RosterItem("x@a.example"))
    with pytest.raises(UnknownAccount):
        await OfflineStore(db).push(H, "ghost", b"<message/>", 10)
    with pytest.raises(UnknownAccount):
        await KeyValueStore(db).put(H, "ghost", "private", "k", b"v")
    with pytest.raises(UnknownAccount):
        await BlocklistStore(db).add(H, "ghost", ["x@a.example"])


# roster


async def test_roster_versions_bump_on_every_change(db: Database, accounts: AccountStore) -> None:
    roster = RosterStore(db)
    assert await roster.version(H, "romeo") == 0
    item = RosterItem("juliet@a.example", "Juliet", "to", ask=False, approved=True, groups=("Capulet", "Ünï"))
    assert await roster.put(H, "romeo", item) == 1
    assert await roster.item(H, "romeo", "juliet@a.example") == item
    updated = RosterItem("juliet@a.example", None, "both", ask=True, groups=())
    assert await roster.put(H, "romeo", updated) == 2
    assert await roster.put(H, "romeo", RosterItem("nurse@a.example")) == 3
    assert await roster.items(H, "romeo") == [updated, RosterItem("nurse@a.example")]
    assert await roster.count(H, "romeo") == 2
    assert await roster.remove(H, "romeo", "nobody@a.example") is None
    assert await roster.version(H, "romeo") == 3
    assert await roster.remove(H, "romeo", "nurse@a.example") == 4
    assert await roster.item(H, "romeo", "nurse@a.example") is None
    assert await roster.version(H, "romeo") == 4


async def test_concurrent_roster_puts_get_distinct_versions(db: Database, accounts: AccountStore) -> None:
    roster = RosterStore(db)
    versions = await asyncio.gather(*(roster.put(H, "romeo", RosterItem(f"c{i}@b")) for i in range(50)))
    assert sorted(versions) == list(range(1, 51))


# offline


async def test_offline_queue_respects_the_limit(db: Database, accounts: AccountStore) -> None:
    offline = OfflineStore(db)
    results = await asyncio.gather(*(offline.push(H, "romeo", f"<m n='{i}'/>".encode(), 5) for i in range(8)))
    assert results.count(True) == 5 and results.count(False) == 3
    assert await offline.count(H, "romeo") == 5
    messages = await offline.fetch(H, "romeo")
    assert [m.stanza for m in messages] == [f"<m n='{i}'/>".encode() for i in range(5)]  # oldest first
    assert [m.id for m in messages] == sorted(m.id for m in messages)
    assert all(m.stored_at > 0 for m in messages)

    await offline.delete(H, "romeo", [messages[0].id, messages[1].id])
    await offline.delete(H, "juliet", [messages[2].id])  # not juliet's: nothing happens
    assert [m.id for m in await offline.fetch(H, "romeo")] == [m.id for m in messages[2:]]
    assert await offline.push(H, "romeo", b"<again/>", 5)


# key-value


async def test_key_value_store(db: Database, accounts: AccountStore) -> None:
    kv = KeyValueStore(db)
    assert await kv.get(H, "romeo", "private", "storage:bookmarks") is None
    await kv.put(H, "romeo", "private", "storage:bookmarks", b"<storage/>")
    await kv.put(H, "romeo", "private", "storage:rosternotes", b"<notes/>")
    await kv.put(H, "romeo", "private", "storage:bookmarks", b"<storage v='2'/>")
    await kv.put(H, "romeo", "vcard", "", b"<vCard/>")
    assert await kv.get(H, "romeo", "private", "storage:bookmarks") == b"<storage v='2'/>"
    assert await kv.all(H, "romeo", "private") == {
        "storage:bookmarks": b"<storage v='2'/>",
        "storage:rosternotes": b"<notes/>",
    }
    assert await kv.delete(H, "romeo", "private", "storage:rosternotes")
    assert not await kv.delete(H, "romeo", "private", "storage:rosternotes")
    assert await kv.all(H, "romeo", "vcard") == {"": b"<vCard/>"}


# blocklist


async def test_blocklist(db: Database, accounts: AccountStore) -> None:
    blocks = BlocklistStore(db)
    assert await blocks.items(H, "romeo") == []
    await blocks.add(H, "romeo", ["b@x", "a@x", "b@x"])
    await blocks.add(H, "romeo", ["a@x", "c@x"])
    assert await blocks.items(H, "romeo") == ["a@x", "b@x", "c@x"]
    await blocks.remove(H, "romeo", ["b@x", "missing@x"])
    assert await blocks.items(H, "romeo") == ["a@x", "c@x"]
    await blocks.clear(H, "romeo")
    assert await blocks.items(H, "romeo") == []
