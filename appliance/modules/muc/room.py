"""One room (XEP-0045): occupants, roles and affiliations, presence, messages, invitations, destruction."""

from __future__ import annotations

import base64
import copy
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import replace
from typing import Protocol

from lxml import etree

from appliance.modules.muc.config import RoomConfig
from appliance.modules.muc.fanout import Fanout, Template, to_attr
from appliance.modules.muc.history import Entry, History, HistoryRequest
from appliance.modules.muc.roles import AFFILIATION_RANK, default_role
from appliance.storage.api import MucAffiliation
from appliance.util.timestamps import format_datetime as format_stamp
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.jid import JID
from appliance.xmpp.ns import NS_CLIENT, NS_DELAY, NS_MUC, NS_MUC_USER, NS_OCCUPANT_ID, NS_STANZA_ID

PRESENCE = f"{{{NS_CLIENT}}}presence"
MESSAGE = f"{{{NS_CLIENT}}}message"
MUC_X = f"{{{NS_MUC}}}x"
USER_X = f"{{{NS_MUC_USER}}}x"
OCCUPANT_ID = f"{{{NS_OCCUPANT_ID}}}occupant-id"
STANZA_ID = f"{{{NS_STANZA_ID}}}stanza-id"
SUBJECT = f"{{{NS_CLIENT}}}subject"
BODY = f"{{{NS_CLIENT}}}body"
STATUS = f"{{{NS_CLIENT}}}status"


class RoomHost(Protocol):
    """What a room needs from its chat service."""

    fanout: Fanout

    def now(self) -> float: ...

    def history_ceiling(self) -> int: ...

    async def persist(self, room: Room) -> None: ...

    async def persist_affiliation(self, room: Room, item: MucAffiliation) -> None: ...

    async def persist_subject(self, room: Room) -> None: ...

    async def archive(self, room: Room, archive_id: str, nick: str, stanza: bytes) -> None: ...

    async def forget(self, room: Room) -> None: ...

    def track(self, real: JID, room: Room, joined: bool) -> None: ...


class Occupant:
    """Somebody in the room under one nickname, from one or more sessions of the same account."""

    __slots__ = ("bare", "nick", "occupant_id", "presence", "role", "sessions")

    def __init__(self, nick: str, bare: JID, role: str, occupant_id: str) -> None:
        self.nick = nick
        self.bare = bare
        self.role = role
        self.occupant_id = occupant_id
        self.sessions: dict[JID, bytes] = {}  # real full JID -> its ` to="..."` bytes
        self.presence: etree._Element | None = None  # the client's last presence payload

    @property
    def real(self) -> JID:
        return next(iter(self.sessions))


def muc_user(*children: etree._Element) -> etree._Element:
    x = etree.Element(USER_X, nsmap={None: NS_MUC_USER})
    for child in children:
        x.append(child)
    return x


def status(x: etree._Element, *codes: int) -> None:
    for code in codes:
        etree.SubElement(x, f"{{{NS_MUC_USER}}}status", code=str(code))


def stanza(tag: str, from_: str, type_: str | None = None) -> etree._Element:
    el = etree.Element(tag, nsmap={None: NS_CLIENT})
    el.set("from", from_)
    if type_:
        el.set("type", type_)
    return el


class Room:
    """A room's state and its protocol logic; its service delivers stanzas and stores what must last."""

    def __init__(self, host: RoomHost, jid: JID, config: RoomConfig, *, created_at: float) -> None:
        self.host = host
        self.jid = jid
        self.text = str(jid)
        self.config = config if config.occupant_salt else replace(config, occupant_salt=secrets.token_hex(16))
        self.created_at = created_at
        self.affiliations: dict[str, MucAffiliation] = {}
        self.occupants: dict[str, Occupant] = {}  # nick -> occupant
        self.by_real: dict[JID, Occupant] = {}
        self.subject = ""
        self.subject_by = ""
        self.locked = False  # created but not configured yet (§10.1)
        self.history = History(config.history_length)
        self.destroyed = False

    # -- lookups ---------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.jid.local or ""

    def affiliation(self, jid: JID) -> str:
        item = self.affiliations.get(str(jid.bare())) or self.affiliations.get(jid.domain)
        return item.affiliation if item is not None else "none"

    def with_affiliation(self, affiliation: str) -> list[MucAffiliation]:
        return [a for a in self.affiliations.values() if a.affiliation == affiliation]

    def registered_nick(self, bare: JID) -> str:
        item = self.affiliations.get(str(bare))
        return item.nick if item is not None else ""

    def nick_owner(self, nick: str) -> str | None:
        """The bare JID that registered `nick`, if any."""
        for item in self.affiliations.values():
            if item.nick == nick:
                return item.jid
        return None

    def occupant_id(self, bare: JID) -> str:
        digest = hashlib.sha256(f"{self.config.occupant_salt}\0{bare}".encode()).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()

    def sees_jids(self, viewer: Occupant) -> bool:
        return self.config.non_anonymous or viewer.role == "moderator"

    def empty(self) -> bool:
        return not self.occupants

    # -- presence --------------------------------------------------------------------------------

    def _presence_of(self, occ: Occupant, *, jid: JID | None, unavailable: bool = False,
                     codes: Iterable[int] = (), extra: Iterable[etree._Element] = (),
                     new_nick: str | None = None, why: str | None = None) -> etree._Element:
        pres = stanza(PRESENCE, f"{self.text}/{occ.nick}", "unavailable" if unavailable else None)
        if occ.presence is not None and not unavailable:
            for child in occ.presence:
                pres.append(copy.copy(child))
        if why:
            etree.SubElement(pres, STATUS).text = why
        item = etree.Element(f"{{{NS_MUC_USER}}}item", affiliation=self.affiliation(occ.bare), role=occ.role)
        if jid is not None:
            item.set("jid", str(jid))
        if new_nick is not None:
            item.set("nick", new_nick)  # §7.6: the new nickname is an attribute of this very item
        x = muc_user(item)
        for child in extra:
            if child.tag.startswith(f"{{{NS_MUC_USER}}}") and child.tag != f"{{{NS_MUC_USER}}}status":
                item.append(child)
            else:
                x.append(child)
        status(x, *codes)
        pres.append(x)
        etree.SubElement(pres, OCCUPANT_ID, nsmap={None: NS_OCCUPANT_ID}, id=occ.occupant_id)
        return pres

    async def broadcast_presence(self, occ: Occupant, *, unavailable: bool = False, codes: Iterable[int] = (),
                                 self_codes: Iterable[int] = (), extra: Iterable[etree._Element] = (),
                                 real: JID | None = None, new_nick: str | None = None,
                                 why: str | None = None) -> None:
        """Tell every occupant about `occ`: real JIDs only to those allowed to see them; the occupant's
        own sessions get 110 and `self_codes` too."""
        codes, extra = tuple(codes), tuple(extra)
        shown = real or (occ.real if occ.sessions else None)
        with_jid = self._presence_of(occ, jid=shown, unavailable=unavailable, codes=codes, extra=extra,
                                     new_nick=new_nick, why=why)
        visible = unavailable or occ.role in self.config.presence_broadcast
        templates = {True: Template(with_jid)}
        if visible and not self.config.non_anonymous:
            templates[False] = Template(self._presence_of(occ, jid=None, unavailable=unavailable, codes=codes,
                                                          extra=extra, new_nick=new_nick, why=why))
        for sees in (True, False):
            if visible and sees in templates:
                await self.host.fanout.send(templates[sees], (
                    (real_jid, attr) for other in self.occupants.values() if other is not occ
                    and self.sees_jids(other) == sees for real_jid, attr in other.sessions.items()))
        mine = self._presence_of(occ, jid=shown, unavailable=unavailable, codes=(*codes, *self_codes, 110),
                                 extra=extra, new_nick=new_nick, why=why)
        targets = dict(occ.sessions)
        if real is not None and real not in targets:
            targets[real] = to_attr(real)
        await self.host.fanout.send(Template(mine), targets.items())

    async def _send_occupants_to(self, newcomer: Occupant, real: JID) -> None:
        sees = self.sees_jids(newcomer)
        for other in list(self.occupants.values()):
            if other is newcomer or other.role not in self.config.presence_broadcast:
                continue
            pres = self._presence_of(other, jid=other.real if sees else None)
            await self.host.fanout.send_one(pres, real)

    async def join(self, real: JID, nick: str, pres: etree._Element, *, created: bool = False) -> None:
        """Enter the room (§7.2) or, for a session already in, update its presence or nickname."""
        current = self.by_real.get(real)
        if current is not None:
            if current.nick == nick:
                current.presence = _payload(pres)
                await self.broadcast_presence(current)
            else:
                await self.change_nick(current, real, nick, pres)
            return
        bare = real.bare()
        affiliation = self.affiliation(real)
        x = pres.find(MUC_X)
        occ = self.occupants.get(nick)
        self._check_entry(real, nick, affiliation, x, occ)
        if occ is None:
            occ = Occupant(nick, bare, default_role(affiliation, self.config.moderated), self.occupant_id(bare))
            self.occupants[nick] = occ
        occ.sessions[real] = to_attr(real)
        occ.presence = _payload(pres)
        self.by_real[real] = occ
        self.host.track(real, self, True)
        await self._send_occupants_to(occ, real)
        codes = []
        if self.config.non_anonymous:
            codes.append(100)
        if self.config.archive:
            codes.append(170)
        if created:
            codes.append(201)
        await self.broadcast_presence(occ, self_codes=codes, real=real)
        await self._send_history(real, occ, HistoryRequest.parse(x))
        subject = stanza(MESSAGE, f"{self.text}/{self.subject_by}" if self.subject_by else self.text, "groupchat")
        subject.set("id", secrets.token_hex(8))
        etree.SubElement(subject, SUBJECT).text = self.subject
        await self.host.fanout.send_one(subject, real)

    def restore(self, real: JID, nick: str, presence: etree._Element | None) -> None:
        """Put back, without a word to anyone, an occupant the room had on a node that died (a cluster's
        takeover): its client never left, so it is told nothing; its role is the default of its
        affiliation again. An outcast, or a nickname taken meanwhile, is not restored."""
        affiliation = self.affiliation(real)
        occ = self.occupants.get(nick)
        if affiliation == "outcast" or real in self.by_real or (occ is not None and occ.bare != real.bare()):
            return
        if occ is None:
            bare = real.bare()
            occ = self.occupants[nick] = Occupant(nick, bare, default_role(affiliation, self.config.moderated),
                                                  self.occupant_id(bare))
        occ.sessions[real] = to_attr(real)
        occ.presence = presence
        self.by_real[real] = occ
        self.host.track(real, self, True)

    def _check_entry(self, real: JID, nick: str, affiliation: str, x: etree._Element | None,
                     occ: Occupant | None) -> None:
        """The checks of §7.2.6-7.2.10, in the order the specification gives them."""
        rank = AFFILIATION_RANK[affiliation]
        if self.locked and affiliation != "owner":
            raise StanzaError.item_not_found("This room is locked until its owner configures it")
        if affiliation == "outcast":
            raise StanzaError.forbidden("You are banned from this room")
        if self.config.members_only and rank < AFFILIATION_RANK["member"]:
            raise StanzaError.registration_required("This room is for members only")
        if occ is not None and occ.bare != real.bare():
            raise StanzaError.conflict("That nickname is already in use in this room")
        owner = self.nick_owner(nick)
        if owner is not None and owner != str(real.bare()):
            raise StanzaError.conflict("That nickname is registered by another person")
        if self.config.password and rank < AFFILIATION_RANK["owner"]:
            given = x.findtext(f"{{{NS_MUC}}}password") if x is not None else None
            if given != self.config.password:
                raise StanzaError.not_authorized("This room needs a password")
        if occ is None and len(self.occupants) >= self.config.max_occupants and rank < AFFILIATION_RANK["admin"]:
            raise StanzaError.service_unavailable("This room is full")

    async def change_nick(self, occ: Occupant, real: JID, nick: str, pres: etree._Element) -> None:
        """§7.6: unavailable with 303 under the old nickname, then available under the new one."""
        if nick in self.occupants:
            raise StanzaError.conflict("That nickname is already in use in this room")
        owner = self.nick_owner(nick)
        if owner is not None and owner != str(occ.bare):
            raise StanzaError.conflict("That nickname is registered by another person")
        if len(occ.sessions) > 1:
            raise StanzaError.not_acceptable("Change the nickname from a single session")
        await self.broadcast_presence(occ, unavailable=True, codes=(303,), new_nick=nick)
        del self.occupants[occ.nick]
        occ.nick = nick
        occ.presence = _payload(pres)
        self.occupants[nick] = occ
        await self.broadcast_presence(occ)

    async def leave(self, real: JID, pres: etree._Element | None = None) -> None:
        """A session leaves (unavailable presence, or its stream ended)."""
        occ = self.by_real.pop(real, None)
        if occ is None:
            return
        self.host.track(real, self, False)
        if len(occ.sessions) > 1:
            # Another session keeps the nickname: only this one hears that it left.
            del occ.sessions[real]
            mine = self._presence_of(occ, jid=real, unavailable=True, codes=(110,))
            await self.host.fanout.send_one(mine, real)
            return
        occ.role = "none"
        self.occupants.pop(occ.nick, None)
        # §7.14: the others learn why the occupant left (the <status/> of its unavailable presence)
        why = pres.findtext(STATUS) if pres is not None else None
        await self.broadcast_presence(occ, unavailable=True, real=real, why=why)
        occ.sessions.clear()
        await self.vanish_if_empty()

    async def remove(self, occ: Occupant, codes: tuple[int, ...], actor: str | None = None,
                     reason: str | None = None) -> None:
        """Take an occupant out (kick 307, ban 301, affiliation 321/322, shutdown 332)."""
        extra: list[etree._Element] = []
        if actor is not None:
            extra.append(etree.Element(f"{{{NS_MUC_USER}}}actor", nick=actor))
        if reason:
            el = etree.Element(f"{{{NS_MUC_USER}}}reason")
            el.text = reason
            extra.append(el)
        occ.role = "none"
        self.occupants.pop(occ.nick, None)
        reals = list(occ.sessions)
        for real in reals:
            self.by_real.pop(real, None)
            self.host.track(real, self, False)
        # The removed occupant's sessions hear it too (110 plus the code), then leave.
        await self.broadcast_presence(occ, unavailable=True, codes=codes, extra=extra)
        occ.sessions.clear()
        await self.vanish_if_empty()

    async def vanish_if_empty(self) -> None:
        if not self.occupants and not self.config.persistent and not self.destroyed:
            self.destroyed = True
            await self.host.forget(self)

    # -- history ---------------------------------------------------------------------------------

    async def _send_history(self, real: JID, occ: Occupant, request: HistoryRequest) -> None:
        if request.maxstanzas is None:
            request = replace(request, maxstanzas=self.config.history_length)
        attr = occ.sessions[real]
        session = self.host.fanout
        for entry in self.history.select(request, self.host.now()):
            await session.send(_Raw(entry.data), ((real, attr),))

    # -- messages --------------------------------------------------------------------------------

    async def groupchat(self, real: JID, msg: etree._Element) -> None:
        """A groupchat message from an occupant: a subject change or a message for everyone (§7.4)."""
        occ = self.by_real.get(real)
        if occ is None:
            raise StanzaError.not_acceptable("Only occupants may send messages to the room")
        if occ.role == "visitor":
            raise StanzaError.forbidden("Visitors may not speak in this moderated room")
        subject = msg.find(SUBJECT)
        if subject is not None and msg.find(BODY) is None:
            if occ.role != "moderator" and not self.config.change_subject:
                raise StanzaError.forbidden("Only moderators may change the subject")
            self.subject, self.subject_by = subject.text or "", occ.nick
            await self.host.persist_subject(self)
        out = stanza(MESSAGE, f"{self.text}/{occ.nick}", "groupchat")
        if msg.get("id"):
            out.set("id", msg.get("id", ""))
        for child in msg:
            if child.tag in (OCCUPANT_ID, STANZA_ID) or child.tag == f"{{{NS_DELAY}}}delay":
                continue  # never let a client forge what the room vouches for (XEP-0359 §5, XEP-0421 §4)
            out.append(copy.copy(child))
        archive_id = secrets.token_urlsafe(12)
        etree.SubElement(out, OCCUPANT_ID, nsmap={None: NS_OCCUPANT_ID}, id=occ.occupant_id)
        etree.SubElement(out, STANZA_ID, nsmap={None: NS_STANZA_ID}, id=archive_id, by=self.text)
        await self.broadcast_message(out)
        if subject is None or msg.find(BODY) is not None:
            await self.remember(out, archive_id, occ.nick)

    async def broadcast_message(self, out: etree._Element) -> None:
        template = Template(out)
        await self.host.fanout.send(template, (
            (real, attr) for occ in self.occupants.values() for real, attr in occ.sessions.items()))

    async def remember(self, out: etree._Element, archive_id: str, nick: str) -> None:
        """Keep a broadcast message for history and, when archiving is on, in the room archive."""
        now = self.host.now()
        kept = copy.deepcopy(out)
        kept.attrib.pop("to", None)
        stored = etree.tostring(kept)
        etree.SubElement(kept, f"{{{NS_DELAY}}}delay", nsmap={None: NS_DELAY}, stamp=format_stamp(now),
                         **{"from": self.text})
        self.history.add(Entry(etree.tostring(kept), now, archive_id))
        if self.config.archive:
            await self.host.archive(self, archive_id, nick, stored)

    async def private(self, real: JID, nick: str, msg: etree._Element) -> None:
        """A private message to one occupant (§7.5)."""
        occ = self.by_real.get(real)
        if occ is None:
            raise StanzaError.not_acceptable("Only occupants may send private messages")
        target = self.occupants.get(nick)
        if target is None:
            raise StanzaError.item_not_found("Nobody in the room has that nickname")
        allowed = {"anyone": True, "participants": occ.role in ("participant", "moderator"),
                   "moderators": occ.role == "moderator", "none": False}[self.config.allow_pm]
        if not allowed:
            raise StanzaError.forbidden("Private messages are not allowed in this room")
        out = copy.deepcopy(msg)
        out.set("from", f"{self.text}/{occ.nick}")
        for child in out.findall(OCCUPANT_ID):
            out.remove(child)
        if out.find(USER_X) is None:
            out.append(muc_user())
        etree.SubElement(out, OCCUPANT_ID, nsmap={None: NS_OCCUPANT_ID}, id=occ.occupant_id)
        await self.host.fanout.send(Template(out), target.sessions.items())

    async def notify_codes(self, *codes: int) -> None:
        """A groupchat message from the room carrying status codes (§10.2.1 configuration changes)."""
        out = stanza(MESSAGE, self.text, "groupchat")
        out.set("id", secrets.token_hex(8))
        x = muc_user()
        status(x, *codes)
        out.append(x)
        await self.broadcast_message(out)

    # -- affiliations ----------------------------------------------------------------------------

    async def set_affiliation(self, jid: str, affiliation: str, *, reason: str = "", nick: str | None = None,
                              actor: str | None = None) -> None:
        """Record an affiliation and apply it to occupants of that account (ban, removal, new role)."""
        old = self.affiliations.get(jid)
        keep_nick = old.nick if old is not None and nick is None else (nick or "")
        if affiliation == "none":
            self.affiliations.pop(jid, None)
            item = MucAffiliation(jid, "none")
        else:
            item = MucAffiliation(jid, affiliation, keep_nick if affiliation != "outcast" else "", reason)
            self.affiliations[jid] = item
        await self.host.persist_affiliation(self, item)
        for occ in [o for o in self.occupants.values() if str(o.bare) == jid]:
            if affiliation == "outcast":
                await self.remove(occ, (301,), actor, reason)
            elif affiliation == "none" and self.config.members_only:
                await self.remove(occ, (321,), actor, reason)
            else:
                was_admin = old is not None and old.affiliation in ("owner", "admin")
                if affiliation in ("owner", "admin") or was_admin or occ.role == "visitor":
                    occ.role = default_role(affiliation, self.config.moderated)
                await self.broadcast_presence(occ)

    def owners(self) -> list[str]:
        return sorted(a.jid for a in self.with_affiliation("owner"))

    # -- destruction -----------------------------------------------------------------------------

    async def destroy(self, alternate: str | None = None, reason: str | None = None,
                      password: str | None = None) -> None:
        """§10.9: every occupant gets unavailable presence with <destroy/>, then the room is gone."""
        self.destroyed = True
        destroy = etree.Element(f"{{{NS_MUC_USER}}}destroy")
        if alternate:
            destroy.set("jid", alternate)
        if reason:
            etree.SubElement(destroy, f"{{{NS_MUC_USER}}}reason").text = reason
        if password:
            etree.SubElement(destroy, f"{{{NS_MUC_USER}}}password").text = password
        for occ in list(self.occupants.values()):
            occ.role = "none"
            pres = stanza(PRESENCE, f"{self.text}/{occ.nick}", "unavailable")
            x = muc_user(etree.Element(f"{{{NS_MUC_USER}}}item", affiliation="none", role="none"))
            x.append(copy.deepcopy(destroy))
            status(x, 110)
            pres.append(x)
            await self.host.fanout.send(Template(pres), occ.sessions.items())
            for real in occ.sessions:
                self.host.track(real, self, False)
        self.occupants.clear()
        self.by_real.clear()
        await self.host.forget(self)

    async def shutdown(self) -> None:
        """The service stops: occupants are told with status 332."""
        for occ in list(self.occupants.values()):
            await self.remove(occ, (332,))


class _Raw(Template):
    """A template from bytes already serialized without 'to' (history entries)."""

    def __init__(self, data: bytes) -> None:
        cut = data.index(b" ")
        self._head, self._tail = data[:cut], data[cut:]
        self.element = None  # type: ignore[assignment]


def _payload(pres: etree._Element) -> etree._Element:
    """The parts of a client's presence that occupants see (show, status, caps ...), without MUC data."""
    kept = etree.Element(PRESENCE)
    for child in pres:
        if child.tag not in (MUC_X, USER_X, OCCUPANT_ID) and isinstance(child.tag, str):
            kept.append(copy.copy(child))
    return kept
