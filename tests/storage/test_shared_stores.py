"""The PubSub/PEP, MUC, archive and administration stores on each engine: every method once, with its edge cases."""

from __future__ import annotations

import pytest

from appliance.storage.api import (
    AlreadyExists,
    ArchiveFilter,
    ArchivePrefs,
    MucAffiliation,
    MucRoom,
    PubSubItem,
    PubSubSubscription,
    ScramKeys,
    SharedGroup,
    UnknownAccount,
    UnknownArchiveId,
)
from appliance.storage.stores.accounts import AccountStore
from appliance.storage.stores.archive import ArchiveStore
from appliance.storage.stores.host_kv import HostValueStore
from appliance.storage.stores.muc import MucStore
from appliance.storage.stores.pubsub import PubSubStore
from appliance.storage.stores.shared_groups import SharedGroupStore
from appliance.storage.workers import Database

SERVICE = "pubsub.a.example"
H = "a.example"


async def test_pubsub_nodes_affiliations_and_subscriptions(db: Database) -> None:
    store = PubSubStore(db)
    await store.create_node(SERVICE, "news", '{"a": 1}', "romeo@a.example")
    with pytest.raises(AlreadyExists):
        await store.create_node(SERVICE, "news", "{}", "juliet@a.example")
    await store.create_node(SERVICE, "blog", "{}", "juliet@a.example")
    assert [n.node for n in await store.nodes(SERVICE)] == ["blog", "news"]
    assert await store.configure_node(SERVICE, "news", '{"a": 2}')
    node = await store.node(SERVICE, "news")
    assert node is not None and node.config == '{"a": 2}'
    await store.set_affiliation(SERVICE, "news", "juliet@a.example", "publisher")
    assert await store.affiliations(SERVICE, "news") == {"romeo@a.example": "owner", "juliet@a.example": "publisher"}
    assert await store.affiliations_of(SERVICE, "juliet@a.example") == {"blog": "owner", "news": "publisher"}
    await store.put_subscription(SERVICE, PubSubSubscription("news", "nurse@a.example/phone", "s1", "subscribed"))
    await store.put_subscription(SERVICE, PubSubSubscription("news", "nurse@a.example/phone", "s1", "pending"))
    subs = await store.subscriptions(SERVICE, "news")
    assert [(s.jid, s.state) for s in subs] == [("nurse@a.example/phone", "pending")]
    assert [s.node for s in await store.subscriptions_of(SERVICE, "nurse@a.example")] == ["news"]
    assert await store.delete_subscription(SERVICE, "news", "nurse@a.example/phone")
    assert not await store.delete_subscription(SERVICE, "news", "nurse@a.example/phone")
    assert await store.delete_node(SERVICE, "blog")
    assert await store.delete_service(SERVICE) == 1
    assert await store.nodes(SERVICE) == []


async def test_pubsub_items_keep_publication_order_and_the_limit(db: Database) -> None:
    store = PubSubStore(db)
    await store.create_node(SERVICE, "news", "{}", "romeo@a.example")

    def item(item_id: str) -> PubSubItem:
        return PubSubItem("news", item_id, "romeo@a.example", b"<entry>%s</entry>" % item_id.encode(), 1.5)

    for item_id in ("1", "2", "3"):
        assert await store.put_item(SERVICE, item(item_id), max_items=10) == []
    assert await store.put_item(SERVICE, item("1"), max_items=10) == []  # republished: now the newest
    assert [i.item_id for i in await store.items(SERVICE, "news")] == ["1", "3", "2"]
    assert await store.put_item(SERVICE, item("4"), max_items=2) == ["3", "2"]
    assert [i.item_id for i in await store.items(SERVICE, "news", limit=1)] == ["4"]
    got = await store.items(SERVICE, "news", ids=["1"])
    assert got == [item("1")]
    assert await store.delete_item(SERVICE, "news", "1")
    assert await store.purge(SERVICE, "news") == 1


async def test_muc_rooms_and_affiliations(db: Database) -> None:
    store = MucStore(db)
    owner = MucAffiliation("romeo@a.example", "owner", "Romeo", "")
    room = MucRoom("conference.a.example", "garden", '{"public": true}', created_at=3.0, affiliations=(owner,))
    await store.save(room)
    await store.set_subject("conference.a.example", "garden", "Balcony", "Romeo")
    await store.set_affiliation("conference.a.example", "garden", MucAffiliation("tybalt@a.example", "outcast"))
    stored = await store.room("conference.a.example", "garden")
    assert stored is not None and (stored.subject, stored.subject_by) == ("Balcony", "Romeo")
    assert {a.jid: a.affiliation for a in stored.affiliations} == {
        "romeo@a.example": "owner", "tybalt@a.example": "outcast"}
    await store.set_affiliation("conference.a.example", "garden", MucAffiliation("tybalt@a.example", "none"))
    assert [r.name for r in await store.rooms("conference.a.example")] == ["garden"]
    assert await store.owned_by("conference.a.example", "romeo@a.example") == ["garden"]
    assert len((await store.room("conference.a.example", "garden")).affiliations) == 1  # type: ignore[union-attr]
    assert await store.delete("conference.a.example", "garden")
    assert await store.room("conference.a.example", "garden") is None


async def test_archive_pages_filters_and_prefs(db: Database) -> None:
    store = ArchiveStore(db)
    owner = "romeo@a.example"
    for n in range(5):
        peer = "juliet@a.example" if n % 2 == 0 else "nurse@a.example"
        await store.append(owner, f"id{n}", peer, "balcony", 100.0 + n, b"<message n='%d'/>" % n)
    page = await store.page(owner, ArchiveFilter(), limit=2)
    assert ([m.archive_id for m in page.items], page.count, page.first_index, page.complete) == (
        ["id0", "id1"], 5, 0, False)
    page = await store.page(owner, ArchiveFilter(), limit=2, before="")  # the last page
    assert ([m.archive_id for m in page.items], page.first_index) == (["id3", "id4"], 3)
    page = await store.page(owner, ArchiveFilter(with_jid="juliet@a.example", start=101.0), limit=10, after="id0")
    assert [m.archive_id for m in page.items] == ["id2", "id4"] and page.complete
    page = await store.page(owner, ArchiveFilter(ids=("id1", "id3")), limit=10)
    assert [m.archive_id for m in page.items] == ["id1", "id3"]
    with pytest.raises(UnknownArchiveId):
        await store.page(owner, ArchiveFilter(after_id="nope"), limit=10)
    first, last = await store.bounds(owner)
    assert (first and first.archive_id, last and last.archive_id) == ("id0", "id4")
    assert await store.replace(owner, "id1", b"<message retracted=''/>")
    assert (await store.page(owner, ArchiveFilter(ids=("id1",)), limit=1)).items[0].stanza == b"<message retracted=''/>"
    assert await store.purge_before(102.0) == 2
    assert await store.delete_owner(owner) == 3
    assert await store.prefs(owner) is None
    prefs = ArchivePrefs("roster", ("juliet@a.example",), ("tybalt@a.example",))
    await store.set_prefs(owner, prefs)
    assert await store.prefs(owner) == prefs


async def test_disabled_accounts_and_host_documents(db: Database) -> None:
    accounts, documents = AccountStore(db), HostValueStore(db)
    await accounts.create("a.example", "romeo", [ScramKeys("SHA-256", b"s" * 16, 4096, b"k", b"k")])
    assert not await accounts.set_disabled("a.example", "nobody", True)
    assert await accounts.set_disabled("a.example", "romeo", True)
    assert await accounts.set_disabled("a.example", "romeo", True)  # twice: still one row
    assert await accounts.disabled("a.example") == ["romeo"] and await accounts.is_disabled("a.example", "romeo")
    assert await accounts.set_disabled("a.example", "romeo", False)
    assert not await accounts.is_disabled("a.example", "romeo")
    await documents.put("a.example", "motd", "text", b"Hello")
    await documents.put("a.example", "motd", "text", b"Hello again")
    assert await documents.get("a.example", "motd", "text") == b"Hello again"
    assert await documents.delete("a.example", "motd", "text")
    assert await documents.get("a.example", "motd", "text") is None


async def test_shared_groups_members_rename_and_cascades(db: Database) -> None:
    accounts = AccountStore(db)
    for name in ("romeo", "juliet"):
        await accounts.create(H, name, [])
    store = SharedGroupStore(db)
    await store.create(SharedGroup(H, "Staff", members=("romeo",)))
    await store.create(SharedGroup(H, "All", everyone=True))
    with pytest.raises(AlreadyExists):
        await store.create(SharedGroup(H, "Staff"))
    with pytest.raises(UnknownAccount):
        await store.create(SharedGroup(H, "Ghosts", members=("nobody",)))
    assert [g.name for g in await store.groups(H)] == ["All", "Staff"]  # the failed create left nothing
    assert await store.add_member(H, "Staff", "juliet")
    assert not await store.add_member(H, "Nope", "juliet")
    with pytest.raises(UnknownAccount):
        await store.add_member(H, "Staff", "nobody")
    with pytest.raises(AlreadyExists):
        await store.rename(H, "Staff", "All")
    assert await store.rename(H, "Staff", "Crew")  # the members follow the new name
    assert await store.update(H, "Crew", everyone=False, directory_group="cn=crew,dc=example")
    assert await store.groups(H) == [SharedGroup(H, "All", everyone=True),
                                     SharedGroup(H, "Crew", False, "cn=crew,dc=example", ("juliet", "romeo"))]
    await accounts.delete(H, "juliet")  # a deleted account leaves every group
    assert (await store.groups(H))[1].members == ("romeo",)
    assert await store.remove_member(H, "Crew", "romeo")
    assert not await store.remove_member(H, "Crew", "romeo")
    assert await store.delete(H, "Crew")
    assert not await store.delete(H, "Crew")
    assert await store.groups("other.example") == []


async def test_directory_accounts_have_no_keys_and_follow_their_entry(db: Database) -> None:
    accounts = AccountStore(db)
    assert await accounts.provision(H, "alice", "uid=alice,ou=people,dc=example")  # made now
    assert not await accounts.provision(H, "alice", "uid=alice,ou=staff,dc=example")  # moved in the directory
    assert await accounts.exists(H, "alice")
    assert await accounts.get_keys(H, "alice", "SHA-256") is None
    assert await accounts.directory_dn(H, "alice") == "uid=alice,ou=staff,dc=example"
    await accounts.create(H, "bob", [])
    assert await accounts.directory_dn(H, "bob") is None  # a local account
    assert await accounts.delete(H, "alice")
    assert await accounts.directory_dn(H, "alice") is None  # the link went with the account
