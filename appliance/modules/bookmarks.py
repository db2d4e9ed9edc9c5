"""Bookmarks (XEP-0402) with the #compat conversion: XEP-0402 items on the urn:xmpp:bookmarks:1 PEP
node are kept in step with XEP-0048 bookmarks in private XML (XEP-0049) and on the storage:bookmarks
PEP node, whichever side a client writes."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from appliance.core.api import Bool, Module, ModuleContext, Scope, Xep, option
from appliance.modules.pep import PersonalEventing
from appliance.modules.private import PrivateXml
from appliance.modules.pubsub.engine import Notification
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.jid import JID, JIDError
from appliance.xmpp.ns import NS_BOOKMARKS2

NS_LEGACY = "storage:bookmarks"  # XEP-0048
BOOKMARKS_OPTIONS = {  # XEP-0402 §3: how the bookmarks node is published
    "pubsub#persist_items": "true",
    "pubsub#max_items": "max",
    "pubsub#send_last_published_item": "never",
    "pubsub#access_model": "whitelist",
}
LEGACY_OPTIONS = {"pubsub#persist_items": "true", "pubsub#access_model": "whitelist"}  # XEP-0223


def _legacy(tag: str) -> str:
    return f"{{{NS_LEGACY}}}{tag}"


def _modern(tag: str) -> str:
    return f"{{{NS_BOOKMARKS2}}}{tag}"


def to_legacy(conferences: dict[str, etree._Element]) -> etree._Element:
    """XEP-0048 <storage/> from XEP-0402 <conference/> payloads keyed by room JID."""
    storage = etree.Element(_legacy("storage"), nsmap={None: NS_LEGACY})
    for jid, conference in sorted(conferences.items()):
        entry = etree.SubElement(storage, _legacy("conference"), jid=jid)
        if conference.get("name"):
            entry.set("name", conference.get("name", ""))
        entry.set("autojoin", "true" if conference.get("autojoin") in ("true", "1") else "false")
        for tag in ("nick", "password"):
            text = conference.findtext(_modern(tag))
            if text:
                etree.SubElement(entry, _legacy(tag)).text = text
    return storage


def from_legacy(storage: etree._Element) -> dict[str, etree._Element]:
    """XEP-0402 <conference/> payloads keyed by room JID from an XEP-0048 <storage/>."""
    out: dict[str, etree._Element] = {}
    for entry in storage.iterchildren(_legacy("conference")):
        try:
            jid = str(JID.parse(entry.get("jid", "")))
        except JIDError:
            continue
        conference = etree.Element(_modern("conference"), nsmap={None: NS_BOOKMARKS2})
        if entry.get("name"):
            conference.set("name", entry.get("name", ""))
        if entry.get("autojoin") in ("true", "1"):
            conference.set("autojoin", "true")
        for tag in ("nick", "password"):
            text = entry.findtext(_legacy(tag))
            if text:
                etree.SubElement(conference, _modern(tag)).text = text
        out[jid] = conference
    return out


@dataclass(frozen=True, slots=True)
class BookmarksOptions:
    """Bookmarks (XEP-0402)."""

    compat: bool = option(True, Bool(),
        "Keep XEP-0048 bookmarks (private XML storage and the storage:bookmarks PEP node) in step with XEP-0402 "
        "bookmarks, both ways.")


class Bookmarks(Module):
    """Converts between XEP-0402 and XEP-0048 bookmarks on every change."""

    name = "bookmarks"
    options = BookmarksOptions
    implements = (Xep(402, "1.1.4"), Xep(48, "1.2", status="partial", note="through the #compat conversion"))
    depends = ("pep", "private")

    ctx: ModuleContext

    def setup(self, ctx: ModuleContext[BookmarksOptions]) -> None:
        self.ctx = ctx
        self.pep = ctx.require(PersonalEventing)
        self.private = ctx.require(PrivateXml)
        self.syncing: set[str] = set()  # accounts whose bookmarks this module is writing right now
        ctx.feature(NS_BOOKMARKS2, scope=Scope.ACCOUNT)
        if not ctx.options.compat:
            return
        for var in (f"{NS_BOOKMARKS2}#compat", f"{NS_BOOKMARKS2}#compat-pep"):
            ctx.feature(var, scope=Scope.ACCOUNT)
        self._undo = [self.pep.listen(NS_BOOKMARKS2, self.on_modern), self.pep.listen(NS_LEGACY, self.on_legacy_pep)]
        self.private.listen(NS_LEGACY, self.on_legacy_private)

    async def stop(self) -> None:
        for undo in getattr(self, "_undo", ()):
            undo()

    async def on_modern(self, owner: JID, notification: Notification) -> None:
        """XEP-0402 changed: rewrite both XEP-0048 copies from all current items."""
        if notification.kind not in ("items", "retract", "purge") or str(owner) in self.syncing:
            return
        conferences = {
            item.item_id: etree.fromstring(item.payload)
            for item in await self.pep.items(owner, NS_BOOKMARKS2) if item.payload
        }
        storage = to_legacy(conferences)
        self.syncing.add(str(owner))
        try:
            await self.private.put(owner, storage)
            await self._publish(owner, NS_LEGACY, "current", storage, LEGACY_OPTIONS)
        finally:
            self.syncing.discard(str(owner))

    async def on_legacy_private(self, owner: JID, storage: etree._Element) -> None:
        await self._from_legacy(owner, storage, pep_copy=True)

    async def on_legacy_pep(self, owner: JID, notification: Notification) -> None:
        if notification.kind != "items" or str(owner) in self.syncing:
            return
        found = await self.pep.items(owner, NS_LEGACY, limit=1)
        if found and found[0].payload:
            await self._from_legacy(owner, etree.fromstring(found[0].payload), pep_copy=False)

    async def _from_legacy(self, owner: JID, storage: etree._Element, *, pep_copy: bool) -> None:
        """XEP-0048 changed: publish new or changed rooms as XEP-0402 items and retract removed ones."""
        if str(owner) in self.syncing:
            return
        wanted = from_legacy(storage)
        current = {i.item_id: i.payload for i in await self.pep.items(owner, NS_BOOKMARKS2)}
        self.syncing.add(str(owner))
        try:
            for jid, conference in wanted.items():
                if current.get(jid) != etree.tostring(conference):
                    await self._publish(owner, NS_BOOKMARKS2, jid, conference, BOOKMARKS_OPTIONS)
            for jid in set(current) - set(wanted):
                await self.pep.retract(owner, NS_BOOKMARKS2, jid)
            if pep_copy:
                await self._publish(owner, NS_LEGACY, "current", storage, LEGACY_OPTIONS)
            else:
                await self.private.put(owner, storage)
        finally:
            self.syncing.discard(str(owner))

    async def _publish(
        self, owner: JID, node: str, item_id: str, payload: etree._Element, options: dict[str, str]
    ) -> None:
        try:
            await self.pep.publish(owner, node, item_id, payload, options)
        except StanzaError as err:
            if err.condition != "conflict":
                raise
            await self.pep.publish(owner, node, item_id, payload)  # the owner configured the node otherwise


__all__ = ["Bookmarks", "from_legacy", "to_legacy"]
