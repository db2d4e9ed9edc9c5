"""vCards of directory users (name, mail, phone, photo) filled from the company directory when they log in,
so colleagues see them without anyone typing them in; the photo is also published as the user's PEP avatar
(XEP-0084), which clients such as Conversations show."""

from __future__ import annotations

import base64
import hashlib

from lxml import etree

from appliance.core import events
from appliance.core.api import Directory, DirectoryProfile, Module, ModuleContext
from appliance.core.events import SessionEvent
from appliance.modules.pep import PersonalEventing
from appliance.modules.vcard import VCards
from appliance.xmpp.jid import JID
from appliance.xmpp.ns import NS_AVATAR_DATA, NS_AVATAR_METADATA, NS_VCARD


def _child(parent: etree._Element, name: str, text: str = "") -> etree._Element:
    el = etree.SubElement(parent, f"{{{NS_VCARD}}}{name}")
    if text:
        el.text = text
    return el


def vcard_of(profile: DirectoryProfile) -> etree._Element:
    """A vcard-temp (XEP-0054) element from a directory entry's attributes."""
    vcard = etree.Element(f"{{{NS_VCARD}}}vCard", nsmap={None: NS_VCARD})
    if profile.full_name:
        _child(vcard, "FN", profile.full_name)
    if profile.given_name or profile.family_name:
        n = _child(vcard, "N")
        _child(n, "FAMILY", profile.family_name)
        _child(n, "GIVEN", profile.given_name)
    _child(vcard, "NICKNAME", profile.username)
    if profile.email:
        email = _child(vcard, "EMAIL")
        _child(email, "INTERNET")
        _child(email, "USERID", profile.email)
    if profile.phone:
        tel = _child(vcard, "TEL")
        _child(tel, "WORK")
        _child(tel, "VOICE")
        _child(tel, "NUMBER", profile.phone)
    if profile.photo:
        photo = _child(vcard, "PHOTO")
        _child(photo, "TYPE", profile.photo_type)
        _child(photo, "BINVAL", base64.b64encode(profile.photo).decode("ascii"))
    return vcard


class DirectoryProfiles(Module):
    """Writes a directory user's vCard from the directory at each login (when it changed)."""

    name = "directory"
    depends = ("vcard",)

    def setup(self, ctx: ModuleContext) -> None:
        self.ctx = ctx
        directory = ctx.optional(Directory)  # type: ignore[type-abstract]
        self.directory = directory if directory is not None and directory.serves(ctx.host) else None
        if self.directory is not None and self.directory.vcards:
            self.vcards = ctx.require(VCards)
            self.pep = ctx.optional(PersonalEventing)
            ctx.hook(events.SESSION_BOUND, self.on_bound)

    async def on_bound(self, event: SessionEvent) -> None:
        user = event.session.jid.bare()
        self.ctx.spawn(self.refresh(user), "vcard")  # the login does not wait for the directory

    async def refresh(self, user: JID) -> bool:
        """Write `user`'s vCard from the directory; True when it changed."""
        assert self.directory is not None
        if not user.local or await self.ctx.accounts.directory_dn(user) is None:
            return False  # a local account: its vCard is its own
        try:
            profile = await self.directory.user(user.local)
        except ConnectionError as exc:
            self.ctx.log.warning("vCard of %s not refreshed: %s", user, exc)
            return False
        if profile is None:
            return False
        vcard = vcard_of(profile)
        current = await self.vcards.get(user)
        if current is not None and etree.tostring(current, method="c14n") == etree.tostring(vcard, method="c14n"):
            return False
        await self.vcards.put(user, vcard)
        if profile.photo and self.pep is not None:
            await self._publish_avatar(user, profile)
        return True

    async def _publish_avatar(self, user: JID, profile: DirectoryProfile) -> None:
        """The directory photo as the user's XEP-0084 avatar (data, then metadata), unless it is already."""
        assert self.pep is not None
        avatar_id = hashlib.sha1(profile.photo).hexdigest()  # XEP-0084 §4.2: the SHA-1 of the image bytes
        current = await self.pep.items(user, NS_AVATAR_METADATA, limit=1)
        if current and current[0].item_id == avatar_id:
            return
        data = etree.Element(f"{{{NS_AVATAR_DATA}}}data", nsmap={None: NS_AVATAR_DATA})
        data.text = base64.b64encode(profile.photo).decode("ascii")
        await self.pep.publish(user, NS_AVATAR_DATA, avatar_id, data)
        metadata = etree.Element(f"{{{NS_AVATAR_METADATA}}}metadata", nsmap={None: NS_AVATAR_METADATA})
        info = etree.SubElement(metadata, f"{{{NS_AVATAR_METADATA}}}info")
        info.set("id", avatar_id)
        info.set("bytes", str(len(profile.photo)))
        info.set("type", profile.photo_type)
        await self.pep.publish(user, NS_AVATAR_METADATA, avatar_id, metadata)
