"""IQs to the chat service and its rooms: disco, owner (configuration, destruction), admin (roles and
affiliations), nickname registration, self-ping and IQs between occupants."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Awaitable, Callable

from lxml import etree

from appliance.core.events import StanzaEvent
from appliance.modules.muc import config as roomconfig
from appliance.modules.muc.roles import (
    AFFILIATION_RANK,
    check_affiliation_change,
    check_role_change,
    may_read_list,
)
from appliance.modules.muc.room import Room
from appliance.modules.muc.service import Forwarded, MucService
from appliance.xmpp import forms
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.jid import JID, JIDError
from appliance.xmpp.ns import (
    NS_CLIENT,
    NS_DISCO_INFO,
    NS_DISCO_ITEMS,
    NS_MAM,
    NS_MUC,
    NS_MUC_ADMIN,
    NS_MUC_OWNER,
    NS_MUC_USER,
    NS_OCCUPANT_ID,
    NS_PING,
    NS_REGISTER,
)

NS_UNIQUE = f"{NS_MUC}#unique"
NS_REGISTER_FORM = f"{NS_MUC}#register"
NS_SELF_PING = f"{NS_MUC}#self-ping-optimization"  # XEP-0410
NS_MODERATE = "urn:xmpp:message-moderate:1"  # XEP-0425
NS_RETRACT = "urn:xmpp:message-retract:1"  # XEP-0424
NS_STABLE_ID = f"{NS_MUC}#stable_id"
IQ = f"{{{NS_CLIENT}}}iq"

RoomIqHandler = Callable[[Room, StanzaEvent], Awaitable[etree._Element | None]]


def _query(ns: str, local: str = "query") -> etree._Element:
    return etree.Element(f"{{{ns}}}{local}", nsmap={None: ns})


class MucIq:
    """Answers IQs for one MucService; `extra` holds handlers other parts add (archive, moderation)."""

    def __init__(self, service: MucService, *, name: str) -> None:
        self.service = service
        self.name = name
        self.extra: dict[tuple[str, str], RoomIqHandler] = {}
        self.room_features: list[str] = []
        self._forwarded: dict[str, tuple[JID, str, str]] = {}  # our id -> requester, its id, target nick

    async def __call__(self, room: Room | None, event: StanzaEvent) -> etree._Element | None:
        stanza = event.stanza
        payload, kind = stanza[0], stanza.get("type", "")
        if room is None:
            return await self._service_iq(kind, payload, event)
        if event.to_jid.resource is not None:
            return await self._occupant_iq(room, event)
        handler = self._ROOM.get((kind, payload.tag))
        if handler is not None:
            return await handler(self, room, event)
        extra = self.extra.get((kind, payload.tag))
        if extra is not None:
            return await extra(room, event)
        raise StanzaError.service_unavailable()

    # -- the service ---------------------------------------------------------------------------

    async def _service_iq(self, kind: str, payload: etree._Element, event: StanzaEvent) -> etree._Element | None:
        if kind == "get" and payload.tag == f"{{{NS_DISCO_INFO}}}query":
            query = _query(NS_DISCO_INFO)
            etree.SubElement(query, f"{{{NS_DISCO_INFO}}}identity", category="conference", type="text",
                             name=self.name)
            for var in sorted({NS_MUC, NS_UNIQUE, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_OCCUPANT_ID,
                               NS_MODERATE, NS_SELF_PING, NS_STABLE_ID}):
                etree.SubElement(query, f"{{{NS_DISCO_INFO}}}feature", var=var)
            return query
        if kind == "get" and payload.tag == f"{{{NS_DISCO_ITEMS}}}query":
            query = _query(NS_DISCO_ITEMS)
            for jid, name in await self.service.public_rooms():
                etree.SubElement(query, f"{{{NS_DISCO_ITEMS}}}item", jid=jid, name=name)
            return query
        if kind == "get" and payload.tag == f"{{{NS_UNIQUE}}}unique":
            unique = _query(NS_UNIQUE, "unique")
            unique.text = self.service.unique_name()
            return unique
        if kind == "get" and payload.tag == f"{{{NS_PING}}}ping":
            return None
        raise StanzaError.service_unavailable()

    # -- IQs to room/nick (XEP-0410 self-ping, §7.7 IQ forwarding) -------------------------------

    async def _occupant_iq(self, room: Room, event: StanzaEvent) -> etree._Element | None:
        sender = room.by_real.get(event.from_jid)
        nick = event.to_jid.resource or ""
        if sender is None:
            raise StanzaError.not_acceptable("You are not in this room")
        if sender.nick == nick and event.stanza[0].tag == f"{{{NS_PING}}}ping":
            return None  # the occupant is joined under this nickname: XEP-0410 §4
        target = room.occupants.get(nick)
        if target is None:
            raise StanzaError.item_not_found("Nobody in the room has that nickname")
        out = copy.deepcopy(event.stanza)
        our_id = secrets.token_hex(8)
        self._forwarded[our_id] = (event.from_jid, event.stanza.get("id", ""), nick)
        if len(self._forwarded) > 10_000:
            self._forwarded.pop(next(iter(self._forwarded)))
        out.set("id", our_id)
        out.set("from", f"{room.text}/{sender.nick}")
        await self.service.fanout.send_one(out, target.real)
        raise Forwarded

    async def answer_forwarded(self, room: Room, event: StanzaEvent) -> bool:
        """A result or error from an occupant to an IQ we forwarded: pass it back to the requester."""
        found = self._forwarded.pop(event.stanza.get("id", ""), None)
        if found is None:
            return False
        requester, their_id, nick = found
        out = copy.deepcopy(event.stanza)
        out.set("id", their_id)
        out.set("from", f"{room.text}/{nick}")
        await self.service.fanout.send_one(out, requester)
        return True

    # -- disco -----------------------------------------------------------------------------------

    async def room_info(self, room: Room, event: StanzaEvent) -> etree._Element:
        if event.stanza[0].get("node"):
            raise StanzaError.item_not_found("No such node")
        c = room.config
        query = _query(NS_DISCO_INFO)
        etree.SubElement(query, f"{{{NS_DISCO_INFO}}}identity", category="conference", type="text",
                         name=c.name or room.name)
        features = {
            NS_MUC, NS_MUC_USER, NS_DISCO_INFO, NS_REGISTER, NS_OCCUPANT_ID, NS_SELF_PING, NS_STABLE_ID,
            NS_MODERATE, NS_RETRACT, "urn:xmpp:sid:0",
            "muc_public" if c.public else "muc_hidden",
            "muc_persistent" if c.persistent else "muc_temporary",
            "muc_membersonly" if c.members_only else "muc_open",
            "muc_moderated" if c.moderated else "muc_unmoderated",
            "muc_passwordprotected" if c.password else "muc_unsecured",
            "muc_nonanonymous" if c.non_anonymous else "muc_semianonymous",
            *self.room_features,
        }
        if c.archive:
            features.add(NS_MAM)
        for var in sorted(features):
            etree.SubElement(query, f"{{{NS_DISCO_INFO}}}feature", var=var)
        query.append(roomconfig.info_form(c, len(room.occupants), room.subject))
        return query

    async def room_items(self, room: Room, event: StanzaEvent) -> etree._Element:
        query = _query(NS_DISCO_ITEMS)
        if event.from_jid in room.by_real:  # only occupants learn who else is there
            for nick in sorted(room.occupants):
                etree.SubElement(query, f"{{{NS_DISCO_ITEMS}}}item", jid=f"{room.text}/{nick}")
        return query

    # -- owner (§10) -------------------------------------------------------------------------------

    def _require_owner(self, room: Room, jid: JID) -> None:
        if room.affiliation(jid) != "owner":
            raise StanzaError.forbidden("Only owners may do this")

    async def owner_get(self, room: Room, event: StanzaEvent) -> etree._Element:
        self._require_owner(room, event.from_jid)
        query = _query(NS_MUC_OWNER)
        query.append(roomconfig.config_form(
            room.config, room.owners(), sorted(a.jid for a in room.with_affiliation("admin")),
            max_occupants=self.service.limits.max_occupants))
        return query

    async def owner_set(self, room: Room, event: StanzaEvent) -> etree._Element | None:
        self._require_owner(room, event.from_jid)
        payload = event.stanza[0]
        destroy = payload.find(f"{{{NS_MUC_OWNER}}}destroy")
        if destroy is not None:
            alternate = destroy.get("jid")
            if alternate:
                try:
                    alternate = str(JID.parse(alternate))
                except JIDError:
                    raise StanzaError.jid_malformed("The alternate venue is not a valid JID") from None
            await room.destroy(alternate, destroy.findtext(f"{{{NS_MUC_OWNER}}}reason"),
                               destroy.findtext(f"{{{NS_MUC_OWNER}}}password"))
            return None
        form = payload.find(forms.X)
        if form is None:
            raise StanzaError.bad_request("Send a configuration form or <destroy/>")
        if form.get("type") == "cancel":
            if room.locked:
                await room.destroy()
            return None
        if form.get("type") != "submit":
            raise StanzaError.bad_request("Submit the configuration form")
        await self.configure(room, form)
        return None

    async def configure(self, room: Room, form: etree._Element) -> None:
        """Apply a submitted form: unlock, persist, notify and remove non-members when needed (§10.2)."""
        limits = self.service.limits
        before = room.config
        submitted = roomconfig.apply_form(before, form, max_occupants=limits.max_occupants,
                                          max_history=limits.max_history)
        if submitted.owners is not None and not submitted.owners:
            raise StanzaError.conflict("A room needs at least one owner")
        after = submitted.config
        room.config = after
        room.history.resize(after.history_length)
        was_locked, room.locked = room.locked, False
        if after.persistent:
            await self.service.persist(room)
        elif before.persistent:
            await self.service.store.delete(self.service.domain, room.name)
        for attr, affiliation in (("owners", "owner"), ("admins", "admin")):
            wanted = getattr(submitted, attr)
            if wanted is None:
                continue
            jids = {_bare(j) for j in wanted}
            for jid in jids:
                if room.affiliation(JID.parse(jid)) != affiliation:
                    await room.set_affiliation(jid, affiliation)
            for item in room.with_affiliation(affiliation):
                if item.jid not in jids:
                    await room.set_affiliation(item.jid, "none")
        if after.members_only and not before.members_only:
            for occ in list(room.occupants.values()):
                if AFFILIATION_RANK[room.affiliation(occ.bare)] < AFFILIATION_RANK["member"]:
                    await room.remove(occ, (322,))
        if was_locked:
            return
        codes = [104]
        if after.archive != before.archive:
            codes.append(170 if after.archive else 171)
        if after.whois != before.whois:
            codes.append(172 if after.non_anonymous else 173)
        await room.notify_codes(*codes)

    # -- admin (§8, §9) ----------------------------------------------------------------------------

    async def admin_get(self, room: Room, event: StanzaEvent) -> etree._Element:
        items = event.stanza[0].findall(f"{{{NS_MUC_ADMIN}}}item")
        if len(items) != 1:
            raise StanzaError.bad_request("Ask for one affiliation or one role")
        actor = room.by_real.get(event.from_jid)
        actor_role = actor.role if actor is not None else "none"
        actor_aff = room.affiliation(event.from_jid)
        query = _query(NS_MUC_ADMIN)
        wanted_aff, wanted_role = items[0].get("affiliation"), items[0].get("role")
        if wanted_aff is not None:
            if wanted_aff not in ("owner", "admin", "member", "outcast"):
                raise StanzaError.bad_request(f"Cannot list affiliation {wanted_aff!r}")
            if not may_read_list(actor_role, actor_aff, wanted_aff, room.config.get_member_list):
                raise StanzaError.forbidden("You may not see this list")
            for item in sorted(room.with_affiliation(wanted_aff), key=lambda a: a.jid):
                el = etree.SubElement(query, f"{{{NS_MUC_ADMIN}}}item", affiliation=wanted_aff, jid=item.jid)
                if item.nick:
                    el.set("nick", item.nick)
                if item.reason:
                    etree.SubElement(el, f"{{{NS_MUC_ADMIN}}}reason").text = item.reason
            return query
        if wanted_role not in ("moderator", "participant", "visitor"):
            raise StanzaError.bad_request("Ask for an affiliation or a role")
        if actor_role != "moderator":
            raise StanzaError.forbidden("Only moderators see role lists")
        for occ in sorted(room.occupants.values(), key=lambda o: o.nick):
            if occ.role == wanted_role:
                el = etree.SubElement(query, f"{{{NS_MUC_ADMIN}}}item", role=occ.role, nick=occ.nick,
                                      affiliation=room.affiliation(occ.bare))
                if room.sees_jids(actor) or actor_aff in ("owner", "admin"):  # type: ignore[arg-type]
                    el.set("jid", str(occ.real))
        return query

    async def admin_set(self, room: Room, event: StanzaEvent) -> None:
        """Role and affiliation changes; every item is checked before any is applied."""
        items = event.stanza[0].findall(f"{{{NS_MUC_ADMIN}}}item")
        if not items:
            raise StanzaError.bad_request("No items")
        actor = room.by_real.get(event.from_jid)
        actor_role = actor.role if actor is not None else "none"
        actor_aff = room.affiliation(event.from_jid)
        actor_nick = actor.nick if actor is not None else None
        plan: list[tuple[str, str, str, str]] = []  # (kind, key, value, reason)
        owners = {a.jid for a in room.with_affiliation("owner")}
        for item in items:
            reason = item.findtext(f"{{{NS_MUC_ADMIN}}}reason") or ""
            role, affiliation = item.get("role"), item.get("affiliation")
            if role is not None:
                target = room.occupants.get(item.get("nick", ""))
                if target is None:
                    raise StanzaError.item_not_found("Nobody in the room has that nickname")
                check_role_change(actor_role, actor_aff, room.affiliation(target.bare), target.role, role)
                plan.append(("role", target.nick, role, reason))
            elif affiliation is not None:
                jid = item.get("jid")
                if jid is None and item.get("nick") in room.occupants:
                    jid = str(room.occupants[item.get("nick", "")].bare)
                if jid is None:
                    raise StanzaError.bad_request("An affiliation item needs a 'jid'")
                jid = _bare(jid)
                current = room.affiliations[jid].affiliation if jid in room.affiliations else "none"
                check_affiliation_change(actor_aff, current, affiliation)
                if current == "owner" and affiliation != "owner":
                    owners.discard(jid)
                elif affiliation == "owner":
                    owners.add(jid)
                plan.append(("affiliation", jid, affiliation, reason))
            else:
                raise StanzaError.bad_request("An item needs a 'role' or an 'affiliation'")
        if not owners:
            raise StanzaError.conflict("A room needs at least one owner")
        for kind, key, value, reason in plan:
            if kind == "affiliation":
                await room.set_affiliation(key, value, reason=reason, actor=actor_nick)
                continue
            target = room.occupants.get(key)
            if target is None:
                continue
            if value == "none":
                await room.remove(target, (307,), actor_nick, reason)
            else:
                target.role = value
                await room.broadcast_presence(target, extra=_reason(reason))

    # -- nickname registration (§7.10) -------------------------------------------------------------

    async def register_get(self, room: Room, event: StanzaEvent) -> etree._Element:
        bare = event.from_jid.bare()
        query = _query(NS_REGISTER)
        nick = room.registered_nick(bare)
        if nick:
            etree.SubElement(query, f"{{{NS_REGISTER}}}registered")
            etree.SubElement(query, f"{{{NS_REGISTER}}}username").text = nick
            return query
        self._may_register(room, event.from_jid)
        etree.SubElement(query, f"{{{NS_REGISTER}}}instructions").text = "Choose the nickname to reserve."
        query.append(forms.build(NS_REGISTER_FORM, [
            forms.Field("muc#register_roomnick", "text-single", (), "Nickname"),
        ], title=f"Register with {room.text}"))
        return query

    def _may_register(self, room: Room, jid: JID) -> None:
        affiliation = room.affiliation(jid)
        if affiliation == "outcast":
            raise StanzaError.forbidden("You are banned from this room")
        if room.config.members_only and affiliation == "none":
            raise StanzaError.not_allowed("Members-only rooms register their members themselves")

    async def register_set(self, room: Room, event: StanzaEvent) -> None:
        bare = str(event.from_jid.bare())
        payload = event.stanza[0]
        current = room.affiliations.get(bare)
        if payload.find(f"{{{NS_REGISTER}}}remove") is not None:
            if current is None or not current.nick:
                raise StanzaError.item_not_found("You have no registration here")
            if current.affiliation == "member":
                await room.set_affiliation(bare, "none")
            else:
                await room.set_affiliation(bare, current.affiliation, nick="")
            return
        self._may_register(room, event.from_jid)
        form = payload.find(forms.X)
        nick = ""
        if form is not None:
            nick = (forms.values(form).get("muc#register_roomnick") or ("",))[0].strip()
        else:
            nick = (payload.findtext(f"{{{NS_REGISTER}}}username") or "").strip()
        if not nick:
            raise StanzaError.not_acceptable("A nickname is required")
        owner = room.nick_owner(nick)
        in_use = room.occupants.get(nick)
        if (owner is not None and owner != bare) or (in_use is not None and str(in_use.bare) != bare):
            raise StanzaError.conflict("That nickname is taken")
        affiliation = current.affiliation if current is not None else "member"
        await room.set_affiliation(bare, affiliation, nick=nick)

    async def ping(self, room: Room, event: StanzaEvent) -> None:
        return None

    _ROOM: dict[tuple[str, str], Callable[[MucIq, Room, StanzaEvent], Awaitable[etree._Element | None]]] = {
        ("get", f"{{{NS_DISCO_INFO}}}query"): room_info,
        ("get", f"{{{NS_DISCO_ITEMS}}}query"): room_items,
        ("get", f"{{{NS_MUC_OWNER}}}query"): owner_get,
        ("set", f"{{{NS_MUC_OWNER}}}query"): owner_set,
        ("get", f"{{{NS_MUC_ADMIN}}}query"): admin_get,
        ("set", f"{{{NS_MUC_ADMIN}}}query"): admin_set,
        ("get", f"{{{NS_REGISTER}}}query"): register_get,
        ("set", f"{{{NS_REGISTER}}}query"): register_set,
        ("get", f"{{{NS_PING}}}ping"): ping,
    }


def _reason(text: str) -> tuple[etree._Element, ...]:
    if not text:
        return ()
    el = etree.Element(f"{{{NS_MUC_USER}}}reason")
    el.text = text
    return (el,)


def _bare(text: str) -> str:
    try:
        jid = JID.parse(text)
    except JIDError:
        raise StanzaError.jid_malformed(f"{text!r} is not a valid JID") from None
    return str(jid.bare())


__all__ = ["IQ", "NS_MODERATE", "NS_RETRACT", "MucIq"]
