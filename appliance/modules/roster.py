"""Roster management (RFC 6121 §2): get with versioning, set, remove, and pushes to interested resources."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from lxml import etree

from appliance.core import events
from appliance.core.api import Bool, Int, IqRequest, Module, ModuleContext, Scope, Session, StreamFeature, Xep, option
from appliance.storage.api import RosterItem, RosterStore
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.jid import JID, JIDError
from appliance.xmpp.ns import NS_CLIENT, NS_PREAPPROVAL, NS_ROSTER, NS_ROSTERVER
from appliance.xmpp.stream import C2SState

QUERY = f"{{{NS_ROSTER}}}query"
ITEM = f"{{{NS_ROSTER}}}item"
GROUP = f"{{{NS_ROSTER}}}group"
MAX_TEXT = 1023


class SharedContacts(Protocol):
    """Contacts an administrator shares with a user (modules/shared_roster.py publishes it): on the roster
    with subscription "both" in their shared groups, without being stored in the user's roster."""

    def contacts(self, user: JID) -> dict[str, tuple[str, ...]]:
        """Bare JID of each shared contact of `user` -> the names of the groups they share."""
        ...

    def digest(self, user: JID) -> str:
        """A short fingerprint of `user`'s shared contacts ("" for none): part of the roster version."""
        ...

    def name(self, contact: str) -> str | None:
        """The name to show for a shared contact (from the directory), None when there is none."""
        ...


def with_shared(item: RosterItem | None, contact: str, groups: tuple[str, ...], name: str | None = None) -> RosterItem:
    """A roster item as a user sees it when `contact` is also shared with them in `groups`; `name` is shown
    unless the user named the contact themselves."""
    if item is None:
        return RosterItem(contact, name=name, subscription="both", groups=groups)
    merged = tuple(dict.fromkeys(item.groups + groups))
    return RosterItem(item.contact, item.name or name, "both", False, item.approved, merged)


class RosterService:
    """Roster reads and changes for other modules (presence); every change is pushed. Reads include the
    contacts shared with the user (SharedContacts), as if both were subscribed to each other."""

    def __init__(self, ctx: ModuleContext[RosterOptions]) -> None:
        self._ctx = ctx
        self._versioning = ctx.options.versioning

    def _shared(self) -> SharedContacts | None:
        return self._ctx.optional(SharedContacts)  # type: ignore[type-abstract]

    def _merge(self, item: RosterItem | None, contact: str, groups: tuple[str, ...]) -> RosterItem:
        shared = self._shared()
        return with_shared(item, contact, groups, shared.name(contact) if shared is not None else None)

    def shared(self, user: JID) -> dict[str, tuple[str, ...]]:
        """The contacts shared with `user` (none without the shared_roster module)."""
        shared = self._shared()
        return shared.contacts(user) if shared is not None else {}

    async def items(self, user: JID) -> list[RosterItem]:
        stored = await self._ctx.store(RosterStore).items(user.domain, user.local or "")
        shared = self.shared(user)
        if not shared:
            return stored
        items = {item.contact: item for item in stored}
        for contact, groups in shared.items():
            items[contact] = self._merge(items.get(contact), contact, groups)
        return sorted(items.values(), key=lambda item: item.contact)

    async def item(self, user: JID, contact: JID) -> RosterItem | None:
        bare = str(contact.bare())
        stored = await self._ctx.store(RosterStore).item(user.domain, user.local or "", bare)
        groups = self.shared(user).get(bare)
        return stored if groups is None else self._merge(stored, bare, groups)

    async def version(self, user: JID) -> str:
        """The roster version (XEP-0237, an opaque string): the stored roster's counter, followed by the
        fingerprint of the shared contacts, so a change of either makes clients fetch the roster again."""
        stored = await self._ctx.store(RosterStore).version(user.domain, user.local or "")
        return self.version_string(user, stored)

    def version_string(self, user: JID, stored: int) -> str:
        shared = self._shared()
        digest = shared.digest(user) if shared is not None else ""
        return f"{stored}-{digest}" if digest else str(stored)

    async def put(self, user: JID, item: RosterItem) -> None:
        version = await self._ctx.store(RosterStore).put(user.domain, user.local or "", item)
        groups = self.shared(user).get(item.contact)
        shown = item if groups is None else self._merge(item, item.contact, groups)
        self.push(user, shown, self.version_string(user, version))

    async def remove(self, user: JID, contact: JID) -> bool:
        version = await self._ctx.store(RosterStore).remove(user.domain, user.local or "", str(contact.bare()))
        if version is None:
            return False
        self.push(user, RosterItem(str(contact.bare()), subscription="none"), self.version_string(user, version),
                  removed=True)
        return True

    async def push_current(self, user: JID, contact: str) -> None:
        """Push `contact` as `user` now sees it (after their shared groups changed): the merged item, or a
        removal when it is neither stored nor shared any more."""
        store = self._ctx.store(RosterStore)
        stored = await store.item(user.domain, user.local or "", contact)
        version = self.version_string(user, await store.version(user.domain, user.local or ""))
        groups = self.shared(user).get(contact)
        if groups is not None:
            self.push(user, self._merge(stored, contact, groups), version)
        elif stored is not None:
            self.push(user, stored, version)
        else:
            self.push(user, RosterItem(contact), version, removed=True)

    def push(self, user: JID, item: RosterItem, version: str, *, removed: bool = False) -> None:
        """Send a roster push to every resource of `user` that has requested the roster."""
        for session in self._ctx.sessions.resources(user):
            if not session.interested:
                continue
            iq = etree.Element(f"{{{NS_CLIENT}}}iq", nsmap={None: NS_CLIENT})
            iq.set("type", "set")
            iq.set("id", f"push-{version}-{id(session) % 100000}")
            iq.set("to", str(session.jid))
            query = etree.SubElement(iq, QUERY, nsmap={None: NS_ROSTER})
            if self._versioning:
                query.set("ver", version)
            query.append(item_element(item, removed=removed))
            session.send(iq)


def item_element(item: RosterItem, *, removed: bool = False) -> etree._Element:
    """The <item/> of a roster result or push."""
    el = etree.Element(ITEM)
    el.set("jid", item.contact)
    if removed:
        el.set("subscription", "remove")
        return el
    if item.name:
        el.set("name", item.name)
    el.set("subscription", item.subscription)
    if item.ask:
        el.set("ask", "subscribe")
    if item.approved:
        el.set("approved", "true")
    for group in item.groups:
        etree.SubElement(el, GROUP).text = group
    return el


@dataclass(frozen=True, slots=True)
class RosterOptions:
    """Contact lists (RFC 6121)."""

    versioning: bool = option(True, Bool(), "Offer roster versioning to clients.")
    max_items: int = option(1000, Int(1, 1_000_000), "Most contacts per account.")


class Roster(Module):
    """jabber:iq:roster for local accounts."""

    name = "roster"
    options = RosterOptions
    implements = (Xep(237, "1.3", note="roster versioning (RFC 6121 §2.6)"),)

    def setup(self, ctx: ModuleContext[RosterOptions]) -> None:
        self.ctx = ctx
        self.service = RosterService(ctx)
        self.max_items = ctx.options.max_items
        self.versioning = ctx.options.versioning
        ctx.provide(RosterService, self.service)
        ctx.iq("get", QUERY, self.get, scope=Scope.ACCOUNT, feature=None)
        ctx.iq("set", QUERY, self.set, scope=Scope.ACCOUNT, feature=None)
        if self.versioning:
            ctx.stream_feature(_rosterver_feature)
        ctx.stream_feature(_preapproval_feature)

    async def get(self, req: IqRequest) -> etree._Element | None:
        if not req.is_self or req.session is None:
            raise StanzaError.forbidden("You can only read your own roster")
        user = req.from_jid
        req.session.interested = True
        await self.ctx.fire(events.ROSTER_REQUESTED, events.SessionEvent(req.session))
        if self.versioning:
            version = await self.service.version(user)
            if req.payload.get("ver") == version:
                return None  # RFC 6121 §2.6.3: unchanged, the client keeps its cached roster
        else:
            version = None
        query = etree.Element(QUERY, nsmap={None: NS_ROSTER})
        if version is not None:
            query.set("ver", version)
        for item in await self.service.items(user):
            query.append(item_element(item))
        return query

    async def set(self, req: IqRequest) -> etree._Element | None:
        if not req.is_self:
            raise StanzaError.forbidden("You can only change your own roster")
        items = req.payload.findall(ITEM)
        if len(items) != 1 or len(req.payload) != 1:
            raise StanzaError.bad_request("A roster set carries exactly one <item/>")
        element = items[0]
        try:
            contact = JID.parse(element.get("jid", "")).bare()
        except JIDError:
            raise StanzaError.jid_malformed("The item's 'jid' is not a valid JID") from None
        user = req.from_jid.bare()
        if element.get("subscription") == "remove":
            await self._remove(user, contact)
            return None
        name = element.get("name") or None
        if name is not None and len(name) > MAX_TEXT:
            raise StanzaError.not_acceptable("The item name is too long")
        groups = [g.text or "" for g in element.findall(GROUP)]
        if any(not g.strip() for g in groups):
            raise StanzaError.not_acceptable("Group names cannot be empty")
        if any(len(g) > MAX_TEXT for g in groups):
            raise StanzaError.not_acceptable("A group name is too long")
        if len(set(groups)) != len(groups):
            raise StanzaError.bad_request("Duplicate group names")
        # The stored item, not the shared view: a shared contact's "both" is not the user's own subscription
        # and must not outlive the shared group.
        existing = await self.ctx.store(RosterStore).item(user.domain, user.local or "", str(contact))
        if existing is None:
            count = await self.ctx.store(RosterStore).count(user.domain, user.local or "")
            if count >= self.max_items:
                raise StanzaError.not_allowed(f"The roster is full ({self.max_items} items)")
            item = RosterItem(str(contact), name=name, groups=tuple(groups))
        else:
            item = RosterItem(
                existing.contact, name=name, subscription=existing.subscription, ask=existing.ask,
                approved=existing.approved, groups=tuple(groups),
            )
        await self.service.put(user, item)
        return None

    async def _remove(self, user: JID, contact: JID) -> None:
        if str(contact) in self.service.shared(user):
            raise StanzaError.not_allowed("This contact is in a group the administrator shares with you")
        existing = await self.service.item(user, contact)
        if existing is None:
            raise StanzaError.item_not_found("That contact is not on the roster")
        # RFC 6121 §2.5.2: cancel subscriptions in both directions before forgetting the contact.
        if existing.subscription in ("from", "both"):
            await self._send_presence(user, contact, "unsubscribed")
            # §3.2.2: a contact that loses its subscription sees the user's available resources go away.
            for session in self.ctx.sessions.available(user):
                await self._send_presence(session.jid, contact, "unavailable")
        if existing.subscription in ("to", "both") or existing.ask:
            await self._send_presence(user, contact, "unsubscribe")
        await self.service.remove(user, contact)

    async def _send_presence(self, user: JID, contact: JID, ptype: str) -> None:
        presence = etree.Element(f"{{{NS_CLIENT}}}presence", nsmap={None: NS_CLIENT})
        presence.set("type", ptype)
        presence.set("from", str(user))
        presence.set("to", str(contact))
        await self.ctx.route(presence)


def _after_login(name: str, ns: str) -> StreamFeature:
    """A stream feature offered once the client has authenticated (with the bind feature)."""

    def feature(session: Session) -> etree._Element | None:
        if session.state is not C2SState.AUTHENTICATED:  # type: ignore[attr-defined]
            return None
        return etree.Element(f"{{{ns}}}{name}", nsmap={None: ns})

    return feature


_rosterver_feature = _after_login("ver", NS_ROSTERVER)  # RFC 6121 §2.6
_preapproval_feature = _after_login("sub", NS_PREAPPROVAL)  # RFC 6121 §3.4
