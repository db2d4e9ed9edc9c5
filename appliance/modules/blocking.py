"""Blocking Command (XEP-0191): per-account blocklists, pushes to interested resources, and enforcement.

Enforcement runs on every stanza to a local account, so each host keeps its accounts' blocklists in
memory (loaded on first use, bounded LRU, written through on change): the guard costs no database read
once a list is cached. In a cluster each change is announced to the other nodes, which drop their copy
(and push the change to their own resources of the account) before the block's result is sent.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import weakref
from collections.abc import Awaitable, Iterable, Iterator
from typing import TYPE_CHECKING

from lxml import etree

from appliance.core import events
from appliance.core.api import IqRequest, Module, ModuleContext, Scope, Xep
from appliance.core.events import AccountEvent, StanzaEvent
from appliance.storage.api import BlocklistStore, RosterStore
from appliance.util.lru import LruDict
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.jid import JID, JIDError
from appliance.xmpp.ns import NS_BLOCKING, NS_BLOCKING_ERRORS, NS_CLIENT

if TYPE_CHECKING:
    from appliance.core.api import Session

BLOCKLIST = f"{{{NS_BLOCKING}}}blocklist"
BLOCK = f"{{{NS_BLOCKING}}}block"
UNBLOCK = f"{{{NS_BLOCKING}}}unblock"
ITEM = f"{{{NS_BLOCKING}}}item"
BLOCKED = f"{{{NS_BLOCKING_ERRORS}}}blocked"
IQ = f"{{{NS_CLIENT}}}iq"
MESSAGE = f"{{{NS_CLIENT}}}message"
PRESENCE = f"{{{NS_CLIENT}}}presence"

MAX_ITEMS = 1000  # blocked JIDs per account
MAX_CACHED_USERS = 10_000  # blocklists kept in memory per host (least recently used leave first)


def match_keys(jid: JID) -> Iterator[str]:
    """Blocklist entries that match `jid` (XEP-0191 §4, as XEP-0016): the JID itself, its bare JID,
    its domain and every parent domain (an entry "domain/resource" matches only that very JID)."""
    yield str(jid)
    if jid.resource is not None:
        yield str(jid.bare())  # for domain/resource this is the domain, yielded again below: harmless
    domain = jid.domain
    while domain:
        yield domain
        domain = domain.partition(".")[2]


def blocked_error(text: str | None = None) -> StanzaError:
    """<not-acceptable/> with the <blocked/> application condition (XEP-0191 §3.3)."""
    app = etree.Element(BLOCKED, nsmap={None: NS_BLOCKING_ERRORS})
    return StanzaError.not_acceptable(text, type="cancel", app_element=app)


class BlockingService:
    """The blocklists of one host's accounts, cached in memory; other modules may ask `blocks()`.

    Changes are serialised by one lock (blocking is rare) so the cache always equals the store.
    """

    def __init__(self, store: BlocklistStore, host: str) -> None:
        self._store = store
        self._host = host
        self._cache: LruDict[str, set[str]] = LruDict(MAX_CACHED_USERS)
        self._lock = asyncio.Lock()
        self._generation = 0  # counts lists dropped because another node changed them

    def drop(self, user: str | None) -> None:
        """Another node changed `user`'s list (None: any list may have changed): read it again when needed."""
        self._generation += 1
        if user is None:
            self._cache.clear()
        else:
            self._cache.pop(user)

    async def items(self, user: str) -> set[str]:
        """The user's blocked JIDs (canonical strings); the returned set must not be modified."""
        cached = self._cache.get(user)
        if cached is not None:
            return cached
        generation = self._generation
        loaded = set(await self._store.items(self._host, user))
        if generation != self._generation:  # dropped meanwhile: what was read may predate the change
            return loaded
        # Another load or a change may have filled the entry while we waited: keep the first one.
        return self._cache.setdefault(user, loaded)

    async def blocks(self, user: JID, other: JID) -> bool:
        """Whether the local account `user` has blocked `other`."""
        known = self.cached_blocks(user, other)
        if known is not None:
            return known
        items = await self.items(user.local or "")
        return bool(items) and any(key in items for key in match_keys(other))

    def cached_blocks(self, user: JID, other: JID) -> bool | None:
        """`blocks` without waiting: None while `user`'s list is not in memory."""
        if user.local is None or user.domain != self._host:
            return False
        items = self._cache.get(user.local)
        if items is None:
            return None
        return bool(items) and any(key in items for key in match_keys(other))

    async def add(self, user: str, jids: Iterable[str]) -> list[str]:
        """Block `jids`; returns the ones that were not blocked before."""
        async with self._lock:
            current = await self.items(user)
            new = [jid for jid in dict.fromkeys(jids) if jid not in current]
            if len(current) + len(new) > MAX_ITEMS:
                raise StanzaError.resource_constraint(f"A blocklist holds at most {MAX_ITEMS} addresses")
            await self._store.add(self._host, user, new)
            self._commit(user, current | set(new))
            return new

    async def remove(self, user: str, jids: Iterable[str] | None) -> list[str]:
        """Unblock `jids` (None: everything); returns the ones that were blocked."""
        async with self._lock:
            current = await self.items(user)
            if jids is None:
                gone = sorted(current)
                await self._store.clear(self._host, user)
            else:
                gone = [jid for jid in dict.fromkeys(jids) if jid in current]
                await self._store.remove(self._host, user, gone)
            self._commit(user, current - set(gone))
            return gone

    def forget(self, user: str) -> None:
        """Drop the cached list (the account is gone)."""
        self._cache.pop(user)

    def _commit(self, user: str, items: set[str]) -> None:
        # Replace rather than mutate: readers holding the old set see a consistent snapshot, and an
        # entry evicted while the store write was pending is put back with the written state.
        self._cache.put(user, items)


class Blocking(Module):
    """urn:xmpp:blocking: blocklist get, block, unblock, pushes, and enforcement in both directions."""

    name = "blocking"
    implements = (Xep(191, "1.3"),)

    def setup(self, ctx: ModuleContext) -> None:
        self.ctx = ctx
        self.service = BlockingService(ctx.store(BlocklistStore), ctx.host)
        # Sessions that fetched the blocklist get pushes (XEP-0191 §3.3); weak so closed ones vanish.
        self._interested: weakref.WeakSet[Session] = weakref.WeakSet()
        self._push_ids = itertools.count(1)
        ctx.provide(BlockingService, self.service)
        ctx.iq("get", BLOCKLIST, self.get_blocklist, scope=Scope.ACCOUNT, feature=None)
        ctx.iq("set", BLOCK, self.block, scope=Scope.ACCOUNT, feature=None)
        ctx.iq("set", UNBLOCK, self.unblock, scope=Scope.ACCOUNT, feature=None)
        ctx.feature(NS_BLOCKING)
        ctx.hook(events.STANZA_INBOUND_GUARD, self.on_inbound, events.GUARD)
        ctx.hook(events.MESSAGE_OUTGOING, self.on_outgoing, events.GUARD)
        ctx.hook(events.PRESENCE_OUTGOING, self.on_outgoing, events.GUARD)
        ctx.hook(events.ACCOUNT_DELETED, self.on_account_deleted)
        ctx.on_shared_change("blocking", self.on_changed_elsewhere)

    # -- IQ handlers ------------------------------------------------------------------------------

    async def get_blocklist(self, req: IqRequest) -> etree._Element:
        user = _own_account(req)
        if req.session is not None:
            self._interested.add(req.session)
        return _element(BLOCKLIST, sorted(await self.service.items(user.local or "")))

    async def block(self, req: IqRequest) -> None:
        user = _own_account(req)
        jids = _items(req.payload)
        if not jids:
            raise StanzaError.bad_request("A <block/> needs at least one <item/>")
        new = await self.service.add(user.local or "", jids)
        await self._announce(user, BLOCK, jids)
        # The blocked contacts see us go offline (XEP-0191 §3.3); the inbound guard lets these through.
        await self._send_presence(user, new, available=False)
        self._push(user, _element(BLOCK, jids))

    async def unblock(self, req: IqRequest) -> None:
        user = _own_account(req)
        jids = _items(req.payload)
        gone = await self.service.remove(user.local or "", jids or None)
        await self._announce(user, UNBLOCK, jids)
        await self._send_presence(user, gone, available=True)
        self._push(user, _element(UNBLOCK, jids))

    async def _announce(self, user: JID, tag: str, jids: list[str]) -> None:
        """Tell the other nodes of a cluster: their copy of the list goes, their resources get the push."""
        await self.ctx.shared_changed("blocking", user.local or "", "\n".join([tag, *jids]).encode())

    async def on_changed_elsewhere(self, user: str | None, data: bytes) -> None:
        """Another node changed `user`'s list (data: the block or unblock and its JIDs; empty: the account
        was deleted) or this node may have missed changes (user None)."""
        self.service.drop(user)
        tag, *jids = data.decode().split("\n") if data else ("",)
        if user is not None and tag in (BLOCK, UNBLOCK):
            self._push(JID.parse(f"{user}@{self.ctx.host}"), _element(tag, jids))

    def _push(self, user: JID, payload: etree._Element) -> None:
        """Send the change to every resource of `user` that has requested the blocklist."""
        for session in self.ctx.sessions.resources(user):
            if session not in self._interested:
                continue
            iq = etree.Element(IQ, nsmap={None: NS_CLIENT})
            iq.set("type", "set")
            iq.set("id", f"block-push-{next(self._push_ids)}")
            iq.set("to", str(session.jid))
            iq.append(copy.deepcopy(payload))
            session.send(iq)

    async def _send_presence(self, user: JID, changed: list[str], *, available: bool) -> None:
        """Unavailable presence on block, current presence on unblock, from each available resource to
        every contact allowed to see it (subscription from/both, or directed presence) that `changed`
        covers."""
        if not changed:
            return
        sessions = self.ctx.sessions.available(user)
        if not sessions:
            return
        entries = set(changed)
        targets: set[JID] = set()
        for item in await self.ctx.store(RosterStore).items(user.domain, user.local or ""):
            if item.subscription not in ("from", "both"):
                continue
            try:
                contact = JID.parse(item.contact)
            except JIDError:
                continue
            targets.update(_covered(contact, entries))
        for session in sessions:
            targets.update(t for t in session.directed if any(k in entries for k in match_keys(t)))
        for session in sessions:
            for target in targets:
                if available and session.presence is not None:
                    stanza = copy.deepcopy(session.presence)
                else:
                    stanza = etree.Element(PRESENCE, nsmap={None: NS_CLIENT})
                    stanza.set("type", "unavailable")
                stanza.set("from", str(session.jid))
                stanza.set("to", str(target))
                await self.ctx.route(stanza)

    # -- enforcement ------------------------------------------------------------------------------

    # Both guards run on every routed stanza. The hook bus awaits only what needs waiting, so while
    # the lists involved are in memory (the usual case) a stanza nobody blocked passes without a coroutine.

    def on_inbound(self, event: StanzaEvent) -> bool | Awaitable[bool]:
        """Before delivery to a local account: refuse what its owner blocked, and what a local sender
        blocked (stanzas the server sends on the sender's behalf, or IQs, which skip outgoing hooks)."""
        sender, recipient = event.from_jid, event.to_jid
        if _same_account(sender, recipient):
            return False
        service = self.service
        if service.cached_blocks(recipient, sender) is False and (
            # a client's message or presence passed the outgoing guard, which asked the sender's list
            (event.session is not None and event.stanza.tag != IQ)
            or service.cached_blocks(sender, recipient) is False
        ):
            return False
        return self._inbound(event)

    async def _inbound(self, event: StanzaEvent) -> bool:
        sender, recipient = event.from_jid, event.to_jid
        stanza = event.stanza
        if await self.service.blocks(recipient, sender):
            await self._refuse_inbound(stanza)
            return True
        if await self.service.blocks(sender, recipient):
            if event.session is not None:
                await self.ctx.router.bounce(stanza, blocked_error())
                return True
            # Server-made unavailable presence (a block, a logout) may tell the contact we are gone.
            return not (stanza.tag == PRESENCE and stanza.get("type") == "unavailable")
        return False

    async def _refuse_inbound(self, stanza: etree._Element) -> None:
        """XEP-0191 §3.3: presence vanishes silently, message and IQ get/set see service-unavailable,
        so the user appears offline."""
        kind = stanza.get("type")
        if stanza.tag == PRESENCE:
            return
        if stanza.tag == IQ and kind not in ("get", "set"):
            return
        if stanza.tag == MESSAGE and kind in ("error", "groupchat", "headline"):
            return
        await self.ctx.router.bounce(stanza, StanzaError.service_unavailable())

    def on_outgoing(self, event: StanzaEvent) -> bool | Awaitable[bool]:
        """A local user's message or presence to someone they blocked: refused with <blocked/>."""
        if event.to_jid is None or _same_account(event.to_jid, event.from_jid):
            return False
        if self.service.cached_blocks(event.from_jid, event.to_jid) is False:
            return False
        return self._outgoing(event)

    async def _outgoing(self, event: StanzaEvent) -> bool:
        assert event.to_jid is not None
        if not await self.service.blocks(event.from_jid, event.to_jid):
            return False
        await self.ctx.router.bounce(event.stanza, blocked_error("You have blocked this contact"))
        return True

    async def on_account_deleted(self, event: AccountEvent) -> None:
        jid: JID = event.jid
        if jid.domain == self.ctx.host and jid.local is not None:
            self.service.forget(jid.local)
            await self.ctx.shared_changed("blocking", jid.local)


def _same_account(one: JID, other: JID) -> bool:
    """`one.bare() == other.bare()` without building bare JIDs (runs twice per routed stanza)."""
    return one.local == other.local and one.domain == other.domain


def _own_account(req: IqRequest) -> JID:
    if not req.is_self:
        raise StanzaError.forbidden("You can only manage your own blocklist")
    return req.from_jid.bare()


def _items(payload: etree._Element) -> list[str]:
    """The canonical JIDs of the <item/> children, in order, without duplicates."""
    jids: list[str] = []
    for item in payload.findall(ITEM):
        raw = item.get("jid")
        if raw is None:
            raise StanzaError.bad_request("Each <item/> needs a 'jid' attribute")
        try:
            jids.append(str(JID.parse(raw)))
        except JIDError:
            raise StanzaError.jid_malformed(f"Not a valid JID: {raw[:100]}") from None
    return list(dict.fromkeys(jids))


def _element(tag: str, jids: Iterable[str]) -> etree._Element:
    element = etree.Element(tag, nsmap={None: NS_BLOCKING})
    for jid in jids:
        etree.SubElement(element, ITEM).set("jid", jid)
    return element


def _covered(contact: JID, entries: set[str]) -> Iterator[JID]:
    """Where presence for a roster contact goes when `entries` changed: the bare contact if an entry
    matches it as a whole (bare JID, domain), else each blocked full JID of that contact."""
    if any(key in entries for key in match_keys(contact)):
        yield contact
        return
    prefix = f"{contact}/"
    for entry in entries:
        if entry.startswith(prefix):
            yield JID.parse(entry)
