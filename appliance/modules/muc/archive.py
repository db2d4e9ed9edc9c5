"""A room's archive (XEP-0313 on the room JID) in the shared archive store, history that survives a
restart, and moderated retraction (XEP-0425 with XEP-0424) leaving a tombstone in the archive."""

from __future__ import annotations

import asyncio
import secrets
from types import SimpleNamespace

from lxml import etree

from appliance.core.events import StanzaEvent
from appliance.modules import mam
from appliance.modules.muc.history import Entry
from appliance.modules.muc.iq import NS_MODERATE, NS_RETRACT, MucIq
from appliance.modules.muc.room import MESSAGE, OCCUPANT_ID, Room, stanza
from appliance.modules.muc.service import MucService
from appliance.storage.api import ArchiveFilter, ArchiveStore, UnknownArchiveId
from appliance.util.timestamps import format_datetime
from appliance.xmpp import forms
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.ns import NS_CLIENT, NS_DELAY, NS_MAM, NS_OCCUPANT_ID, NS_RSM

QUERY = f"{{{NS_MAM}}}query"
# XEP-0425 before 0.3 wrapped the notice in XEP-0422 fastening; clients of that era (and slixmpp's
# `apply_to`) still read only this form, so the notice carries it beside the current one, as Prosody does.
NS_FASTEN = "urn:xmpp:fasten:0"
NS_MODERATE_0 = "urn:xmpp:message-moderate:0"
NS_RETRACT_0 = "urn:xmpp:message-retract:0"
MODERATE = f"{{{NS_MODERATE}}}moderate"


class RoomArchive:
    """Plugs archiving, archive queries and moderation into a chat service."""

    def __init__(self, service: MucService, iq: MucIq, store: ArchiveStore, *, page_size: int = 50,
                 max_page_size: int = 250) -> None:
        self.service = service
        self.iq = iq
        self.store = store
        self.paging = SimpleNamespace(options=SimpleNamespace(page_size=page_size, max_page_size=max_page_size))
        self.writing: dict[str, asyncio.Event] = {}  # archive ids whose write has not committed yet

    def install(self) -> None:
        self.service.archiver = self.append
        self.service.history_loader = self.recent
        self.iq.extra[("set", QUERY)] = self.query
        self.iq.extra[("get", QUERY)] = self.form
        self.iq.extra[("set", MODERATE)] = self.moderate

    # -- writing -----------------------------------------------------------------------------------

    async def append(self, room: Room, archive_id: str, nick: str, data: bytes) -> None:
        done = self.writing[archive_id] = asyncio.Event()
        try:
            await self.store.append(room.text, archive_id, room.text, nick, self.service.now(), data)
        finally:
            del self.writing[archive_id]
            done.set()

    async def recent(self, room: Room) -> None:
        """Fill a room's history from its archive (after a restart)."""
        if not room.config.archive or not room.config.history_length:
            return
        page = await self.store.page(room.text, ArchiveFilter(), limit=room.config.history_length, before="")
        for item in page.items:
            message = etree.fromstring(item.stanza)
            etree.SubElement(message, f"{{{NS_DELAY}}}delay", nsmap={None: NS_DELAY},
                             stamp=format_datetime(item.stamp), **{"from": room.text})
            room.history.add(Entry(etree.tostring(message), item.stamp, item.archive_id))

    # -- queries -------------------------------------------------------------------------------------

    def _may_read(self, room: Room, event: StanzaEvent) -> None:
        if not room.config.archive:
            raise StanzaError.service_unavailable("This room keeps no archive")
        affiliation = room.affiliation(event.from_jid)
        if affiliation == "outcast":
            raise StanzaError.forbidden("You are banned from this room")
        if (room.config.members_only and affiliation == "none") or (room.config.password and (
                event.from_jid not in room.by_real and affiliation in ("none", "member"))):
            raise StanzaError.forbidden("Only members and occupants may read this room's archive")

    async def form(self, room: Room, event: StanzaEvent) -> etree._Element:
        self._may_read(room, event)
        query = etree.Element(QUERY, nsmap={None: NS_MAM})
        query.append(forms.build(NS_MAM, [forms.Field(v, "text-single") for v in ("with", "start", "end")]))
        return query

    async def query(self, room: Room, event: StanzaEvent) -> etree._Element:
        """Answer a MAM query on the room: results as messages from the room, then the <fin/>."""
        self._may_read(room, event)
        payload = event.stanza[0]
        where = mam._filter(payload.find(forms.X))
        limit, after, before = mam.Mam._rsm(self.paging, payload.find(f"{{{NS_RSM}}}set"))  # type: ignore[arg-type]
        try:
            page = await self.store.page(room.text, where, limit=limit, after=after, before=before)
        except UnknownArchiveId as exc:
            raise StanzaError.item_not_found(str(exc)) from None
        queryid = payload.get("queryid")
        items = page.items[::-1] if payload.find(f"{{{NS_MAM}}}flip-page") is not None else page.items
        for item in items:
            await self.service.fanout.send_one(mam._result(item, room.jid, event.from_jid, queryid),
                                               event.from_jid)
        return mam._fin(page, queryid)

    # -- moderation (XEP-0425) -------------------------------------------------------------------------

    async def moderate(self, room: Room, event: StanzaEvent) -> None:
        """A moderator retracts a message: everybody is told, history and archive keep a tombstone."""
        moderator = room.by_real.get(event.from_jid)
        if moderator is None or moderator.role != "moderator":
            raise StanzaError.forbidden("Only moderators may retract messages")
        payload = event.stanza[0]
        target = payload.get("id", "")
        if payload.find(f"{{{NS_RETRACT}}}retract") is None or not target:
            raise StanzaError.bad_request("Say which message to retract, with <retract/>")
        if target in self.writing:  # broadcast already, still being written: moderate what is stored
            await self.writing[target].wait()
        page = await self.store.page(room.text, ArchiveFilter(ids=(target,)), limit=1)
        if not page.items and not room.history.replace(target, None):
            raise StanzaError.item_not_found("The room has no message with that id")
        reason = payload.findtext(f"{{{NS_MODERATE}}}reason")
        now = self.service.now()

        def moderated(parent: etree._Element) -> None:
            mod = etree.SubElement(parent, f"{{{NS_MODERATE}}}moderated", nsmap={None: NS_MODERATE},
                                   by=f"{room.text}/{moderator.nick}")
            etree.SubElement(mod, OCCUPANT_ID, nsmap={None: NS_OCCUPANT_ID}, id=moderator.occupant_id)
            if reason:
                etree.SubElement(parent, f"{{{NS_RETRACT}}}reason").text = reason

        notice = stanza(MESSAGE, room.text, "groupchat")
        notice.set("id", secrets.token_hex(8))
        retract = etree.SubElement(notice, f"{{{NS_RETRACT}}}retract", nsmap={None: NS_RETRACT}, id=target)
        moderated(retract)
        notice.append(_legacy_moderation(target, f"{room.text}/{moderator.nick}", reason))
        etree.SubElement(notice, f"{{{NS_CLIENT}}}body").text = "This message was retracted by a moderator."
        await room.broadcast_message(notice)
        for item in page.items:
            original = etree.fromstring(item.stanza)
            tombstone = etree.Element(MESSAGE, nsmap={None: NS_CLIENT})
            for name, value in original.attrib.items():
                tombstone.set(name, value)
            retracted = etree.SubElement(tombstone, f"{{{NS_RETRACT}}}retracted", nsmap={None: NS_RETRACT},
                                         stamp=format_datetime(now))
            moderated(retracted)
            for keep in original.findall(OCCUPANT_ID):
                tombstone.append(keep)
            await self.store.replace(room.text, target, etree.tostring(tombstone))
            delayed = etree.fromstring(etree.tostring(tombstone))
            etree.SubElement(delayed, f"{{{NS_DELAY}}}delay", nsmap={None: NS_DELAY},
                             stamp=format_datetime(item.stamp), **{"from": room.text})
            room.history.replace(target, etree.tostring(delayed))


def _legacy_moderation(target: str, by: str, reason: str | None) -> etree._Element:
    """`<apply-to id><moderated by><retract/><reason/></moderated></apply-to>` of XEP-0425 0.2."""
    apply_to = etree.Element(f"{{{NS_FASTEN}}}apply-to", nsmap={None: NS_FASTEN}, id=target)
    moderated = etree.SubElement(apply_to, f"{{{NS_MODERATE_0}}}moderated", nsmap={None: NS_MODERATE_0}, by=by)
    etree.SubElement(moderated, f"{{{NS_RETRACT_0}}}retract", nsmap={None: NS_RETRACT_0})
    if reason:
        etree.SubElement(moderated, f"{{{NS_MODERATE_0}}}reason").text = reason
    return apply_to
