"""User avatars (XEP-0084) mirrored into vCard-temp (XEP-0398) and announced in presence (XEP-0153).

When an account publishes avatar metadata, the image from its data node becomes the vCard's PHOTO,
and the image hash goes into the vcard-temp:x:update element of the account's outgoing presence, so
clients that only know vCard avatars see the same picture."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from lxml import etree

from appliance.core import events
from appliance.core.api import Bool, Module, ModuleContext, Scope, Xep, option
from appliance.core.events import StanzaEvent
from appliance.modules.pep import PersonalEventing
from appliance.modules.pubsub.engine import Notification
from appliance.modules.vcard import VCards
from appliance.util.lru import LruDict
from appliance.xmpp.jid import JID
from appliance.xmpp.ns import NS_AVATAR_DATA, NS_AVATAR_METADATA, NS_PUBSUB_EVENT, NS_VCARD, NS_VCARD_UPDATE

NS_CONVERSION = "urn:xmpp:pep-vcard-conversion:0"  # XEP-0398
UPDATE = f"{{{NS_VCARD_UPDATE}}}x"
HASH_CACHE_SIZE = 20_000  # accounts whose avatar id is kept in memory


def _v(tag: str) -> str:
    return f"{{{NS_VCARD}}}{tag}"


@dataclass(frozen=True, slots=True)
class AvatarOptions:
    """User avatars (XEP-0084)."""

    vcard_conversion: bool = option(True, Bool(), "Copy a published avatar into the vCard PHOTO (XEP-0398).")
    presence_hash: bool = option(True, Bool(), "Add the avatar hash to outgoing presence (XEP-0153).")


class Avatars(Module):
    """XEP-0398 conversion of XEP-0084 avatars and XEP-0153 hashes in presence."""

    name = "avatar"
    options = AvatarOptions
    implements = (Xep(84, "1.1.4"), Xep(398, "0.2.1"), Xep(153, "1.1", status="partial",
                                                          note="hashes come from the PEP avatar"))
    depends = ("pep", "vcard")

    ctx: ModuleContext

    def setup(self, ctx: ModuleContext[AvatarOptions]) -> None:
        self.ctx = ctx
        opts = ctx.options
        self.pep = ctx.require(PersonalEventing)
        self.vcards = ctx.require(VCards)
        # bare JID → current avatar id ("" when none), for the accounts seen most recently
        self.hashes: LruDict[str, str] = LruDict(HASH_CACHE_SIZE)
        self._undo = []
        if opts.vcard_conversion:
            ctx.feature(NS_CONVERSION, scope=Scope.SERVER)
            ctx.feature(NS_CONVERSION, scope=Scope.ACCOUNT)
        self.convert: bool = opts.vcard_conversion
        self._undo.append(self.pep.listen(NS_AVATAR_METADATA, self.on_metadata))
        ctx.on_shared_change("avatar", self.on_changed_elsewhere)  # the presence hashes of other nodes' publishers
        if opts.presence_hash:
            ctx.hook(events.PRESENCE_OUTGOING, self.on_presence, events.TRANSFORM)

    async def stop(self) -> None:
        for undo in self._undo:
            undo()

    async def on_metadata(self, owner: JID, notification: Notification) -> None:
        if notification.kind != "items":
            return
        info = notification.event.find(f".//{{{NS_PUBSUB_EVENT}}}item/{{{NS_AVATAR_METADATA}}}metadata/"
                                       f"{{{NS_AVATAR_METADATA}}}info")
        if info is None:  # an empty <metadata/> turns the avatar off
            self.hashes.put(str(owner), "")
            await self.ctx.shared_changed("avatar", str(owner), b"")
            if self.convert:
                await self._set_photo(owner, None, None)
            return
        avatar_id = info.get("id", "")
        self.hashes.put(str(owner), avatar_id)
        await self.ctx.shared_changed("avatar", str(owner), avatar_id.encode())
        if not self.convert:
            return
        for item in await self.pep.items(owner, NS_AVATAR_DATA):
            if item.item_id == avatar_id and item.payload:
                data = etree.fromstring(item.payload)
                await self._set_photo(owner, info.get("type", "image/png"), (data.text or "").strip())
                return

    async def on_changed_elsewhere(self, owner: str | None, avatar_id: bytes) -> None:
        """Another node published `owner`'s avatar (None: this node may have missed announcements)."""
        if owner is None:
            self.hashes.clear()
        else:
            self.hashes.put(owner, avatar_id.decode())

    async def _set_photo(self, owner: JID, mime: str | None, binval: str | None) -> None:
        vcard = await self.vcards.get(owner)
        if vcard is None:
            vcard = etree.Element(_v("vCard"), nsmap={None: NS_VCARD})
        for old in vcard.findall(_v("PHOTO")):
            vcard.remove(old)
        if binval:
            base64.b64decode(binval, validate=False)  # the data node's text is base64 by XEP-0084
            photo = etree.SubElement(vcard, _v("PHOTO"))
            etree.SubElement(photo, _v("TYPE")).text = mime or "image/png"
            etree.SubElement(photo, _v("BINVAL")).text = binval
        await self.vcards.put(owner, vcard)

    async def current_hash(self, owner: JID) -> str:
        key = str(owner.bare())
        known = self.hashes.get(key)
        if known is not None:
            return known
        found = await self.pep.items(owner.bare(), NS_AVATAR_METADATA, limit=1)
        info = None
        if found and found[0].payload:
            info = etree.fromstring(found[0].payload).find(f"{{{NS_AVATAR_METADATA}}}info")
        avatar = "" if info is None else info.get("id", "")
        self.hashes.put(key, avatar)
        return avatar

    async def on_presence(self, event: StanzaEvent) -> None:
        """Put the avatar hash into the account's available presence (XEP-0153 §4.1)."""
        stanza = event.stanza
        if event.session is None or stanza.get("type") is not None:
            return
        avatar = await self.current_hash(event.from_jid)
        if not avatar:
            return  # no PEP avatar: leave whatever the client says about its vCard photo
        for old in stanza.findall(UPDATE):
            stanza.remove(old)
        update = etree.SubElement(stanza, UPDATE, nsmap={None: NS_VCARD_UPDATE})
        etree.SubElement(update, f"{{{NS_VCARD_UPDATE}}}photo").text = avatar


__all__ = ["Avatars"]
