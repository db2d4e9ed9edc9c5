"""The invitation store on each engine: a use is claimed by one statement, so concurrent claims from
several connections never exceed the limit; expiry, release, reservation and deletion."""

from __future__ import annotations

import asyncio
import time

from appliance.storage.api import Invitation
from appliance.storage.stores.invitations import InvitationStore
from appliance.storage.workers import Database
from tests.storage.conftest import OpenDb


def invitation(**changes: object) -> Invitation:
    now = time.time()
    fields: dict[str, object] = {"id": "i1", "digest": "d1", "host": "a.example", "creator": "admin@a.example",
                                 "expires": now + 3600, "created": now}
    fields.update(changes)
    return Invitation(**fields)  # type: ignore[arg-type]


async def test_concurrent_claims_from_two_servers_stop_at_the_limit(open_db: OpenDb) -> None:
    # Two Database objects on one database: two processes (the server and the CLI, or cluster nodes).
    first, second = InvitationStore(await open_db()), InvitationStore(await open_db())
    await first.create(invitation(max_uses=3, inviter="alice@a.example", groups=("Team", "Office")))
    now = time.time()
    claims = await asyncio.gather(*((first if i % 2 else second).claim("d1", f"u{i}@a.example", now)
                                    for i in range(20)))
    won = [claim for claim in claims if claim is not None]
    assert len(won) == 3
    (stored,) = await first.list()
    assert stored.uses == 3 and not stored.valid(now) and stored.groups == ("Team", "Office")
    assert sorted(stored.used_by) == sorted(claim.used_by[-1] for claim in won)


async def test_expiry_release_reservation_and_delete(db: Database) -> None:
    store = InvitationStore(db)
    now = time.time()
    await store.create(invitation(id="old", digest="d-old", expires=now - 1, username="zed"))
    await store.create(invitation(id="new", digest="d-new", username="bob"))
    assert await store.claim("d-old", "x@a.example", now) is None
    assert not await store.reserved("a.example", "zed", now) and await store.reserved("a.example", "bob", now)
    claimed = await store.claim("d-new", "bob@a.example", now)
    assert claimed is not None and claimed.uses == 1 and claimed.used_by == ("bob@a.example",)
    assert await store.claim("d-new", "bob2@a.example", now) is None
    assert not await store.reserved("a.example", "bob", now)
    await store.release("new", "bob@a.example")
    found = await store.find("d-new")
    assert found is not None and found.uses == 0 and found.used_by == () and found.valid(now)
    assert await store.delete("new") and not await store.delete("new")
    assert await store.find("d-new") is None and [i.id for i in await store.list("a.example")] == ["old"]
