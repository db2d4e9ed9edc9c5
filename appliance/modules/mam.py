"""Message Archive Management (XEP-0313) with preferences (XEP-0441) and stanza ids (XEP-0359).

Both directions are archived for local accounts at routing time: a sender's copy when the message
leaves (MESSAGE_OUTGOING), the recipient's copy before delivery (MESSAGE_BARE/FULL), so a message
that ends up offline, or is routed again by stream management, is already archived, exactly once (a
message that carries our stanza-id for the recipient was archived before). The write is awaited
inside the hook: the sender's stanza counts as processed only after the archive committed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Literal

from lxml import etree

from appliance.core import events
from appliance.core.api import Choice, Duration, Int, IqRequest, Module, ModuleContext, Scope, Xep, option
from appliance.core.events import AccountEvent, StanzaEvent
from appliance.modules._util import element, parse_stamp, require_owner
from appliance.storage.api import (
    ArchivedMessage,
    ArchiveFilter,
    ArchivePage,
    ArchivePrefs,
    ArchiveStore,
    RosterStore,
    UnknownArchiveId,
)
from appliance.util.timestamps import format_datetime
from appliance.xmpp import forms
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.forms import Field
from appliance.xmpp.jid import JID, JIDError
from appliance.xmpp.ns import NS_CLIENT, NS_DELAY, NS_FORWARD, NS_HINTS, NS_MAM, NS_RSM, NS_STANZA_ID

NS_MAM_EXTENDED = f"{NS_MAM}#extended"
STANZA_ID = f"{{{NS_STANZA_ID}}}stanza-id"
_ENCRYPTED = ("eu.siacs.conversations.axolotl", "urn:xmpp:omemo:2", "urn:xmpp:openpgp:0", "jabber:x:encrypted")
_FIELDS = frozenset({"with", "start", "end", "before-id", "after-id", "ids"})
_PREFS_CACHE = 10_000


def should_archive(stanza: etree._Element) -> bool:
    """Chat and normal messages with content; never errors, headlines, chat states alone or no-store."""
    if stanza.get("type", "normal") not in ("chat", "normal"):
        return False
    if any(stanza.find(f"{{{NS_HINTS}}}{hint}") is not None for hint in ("no-store", "no-permanent-store")):
        return False
    if stanza.find(f"{{{NS_CLIENT}}}body") is not None or stanza.find(f"{{{NS_HINTS}}}store") is not None:
        return True
    return any(etree.QName(child).namespace in _ENCRYPTED for child in stanza)


def set_stanza_id(stanza: etree._Element, by: JID, archive_id: str) -> None:
    """Replace any stanza-id by `by` with ours (XEP-0359 §5: never pass on a forged one)."""
    for old in stanza.findall(STANZA_ID):
        if old.get("by") == str(by):
            stanza.remove(old)
    sid = etree.SubElement(stanza, STANZA_ID, nsmap={None: NS_STANZA_ID})
    sid.set("id", archive_id)
    sid.set("by", str(by))


MamDefault = Literal["always", "never", "roster"]


@dataclass(frozen=True, slots=True)
class MamOptions:
    """Message archive (XEP-0313) with preferences (XEP-0441)."""

    default: MamDefault = option("always", Choice.of(MamDefault),
        "Which messages are archived for an account that set no preference: all, none, or those with contacts on its"
        " roster.")
    retention: float = option(365 * 86400.0, Duration(0, 36500 * 86400.0),
        "How long archived messages are kept; 0 keeps them forever.")
    purge_interval: float = option(3600.0, Duration(1, 86400.0), "How often messages past the retention are deleted.")
    page_size: int = option(50, Int(1, 1000), "Messages per page when a query does not say (RSM max).")
    max_page_size: int = option(250, Int(1, 1000), "Most messages per page a query may ask for.")


class Mam(Module):
    """Archives messages of local accounts and answers archive queries, metadata and preferences."""

    name = "mam"
    options = MamOptions
    implements = (
        Xep(313, "1.1.1", note="urn:xmpp:mam:2 with #extended (before-id, after-id, ids, flip-page)"),
        Xep(441, "0.2.0"),
        Xep(359, "0.7.0"),
        Xep(59, "1.0.0", note="paging archive queries"),
    )

    def setup(self, ctx: ModuleContext[MamOptions]) -> None:
        self.ctx = ctx
        self.options = ctx.options
        self.store = ctx.store(ArchiveStore)
        self._prefs: dict[str, ArchivePrefs] = {}
        ctx.iq("set", f"{{{NS_MAM}}}query", self.on_query, scope=Scope.ACCOUNT)
        ctx.iq("get", f"{{{NS_MAM}}}query", self.on_form, scope=Scope.ACCOUNT, feature=None)
        ctx.iq("get", f"{{{NS_MAM}}}metadata", self.on_metadata, scope=Scope.ACCOUNT, feature=None)
        ctx.iq("get", f"{{{NS_MAM}}}prefs", self.on_get_prefs, scope=Scope.ACCOUNT, feature=None)
        ctx.on_shared_change("mam-prefs", self.on_prefs_changed_elsewhere)
        ctx.iq("set", f"{{{NS_MAM}}}prefs", self.on_set_prefs, scope=Scope.ACCOUNT, feature=None)
        for var in (NS_MAM_EXTENDED, NS_STANZA_ID):
            ctx.feature(var, scope=Scope.ACCOUNT)
        ctx.feature(NS_STANZA_ID)
        ctx.hook(events.MESSAGE_OUTGOING, self.on_outgoing, events.ARCHIVE)
        ctx.hook(events.MESSAGE_BARE, self.on_incoming, events.ARCHIVE)
        ctx.hook(events.MESSAGE_FULL, self.on_incoming, events.ARCHIVE)
        ctx.hook(events.ACCOUNT_DELETED, self.on_account_deleted)
        if self.options.retention > 0:
            ctx.every(self.options.purge_interval, self.purge, "retention")

    # -- archiving ------------------------------------------------------------------------------

    async def on_outgoing(self, event: StanzaEvent) -> None:
        stanza = event.stanza
        # Stanza ids are given by servers only: what a client put there is dropped (XEP-0359 §5).
        for forged in stanza.findall(STANZA_ID):
            stanza.remove(forged)
        if event.session is None or event.to_jid is None or not should_archive(stanza):
            return
        await self._archive(event.from_jid.bare(), event.to_jid, stanza)

    async def on_incoming(self, event: StanzaEvent) -> None:
        stanza = event.stanza
        owner = event.to_jid.bare()
        sender = str(event.from_jid.bare())
        if sender != str(owner):  # the sender's own archive id is of no use to anyone else: not passed on
            for theirs in stanza.findall(STANZA_ID):
                if theirs.get("by") == sender:
                    stanza.remove(theirs)
        if not should_archive(stanza) or any(s.get("by") == str(owner) for s in stanza.findall(STANZA_ID)):
            return  # not archivable, or archived already (a message to oneself, or routed again)
        if not self.ctx.sessions.count_for(owner) and not await self.ctx.accounts.exists(owner):
            return
        await self._archive(owner, event.from_jid, stanza)

    async def _archive(self, owner: JID, other: JID, stanza: etree._Element) -> None:
        if not await self._wanted(owner, other):
            return
        archive_id = secrets.token_urlsafe(12)
        set_stanza_id(stanza, owner, archive_id)
        await self.store.append(
            str(owner), archive_id, str(other.bare()), other.resource or "", self.ctx.now(), etree.tostring(stanza)
        )

    async def _wanted(self, owner: JID, other: JID) -> bool:
        prefs = await self._prefs_of(owner)
        bare = str(other.bare())
        if bare in prefs.never or str(other) in prefs.never:
            return False
        if bare in prefs.always or str(other) in prefs.always or prefs.default == "always":
            return True
        if prefs.default == "never" or owner.local is None:
            return False
        return await self.ctx.store(RosterStore).item(owner.domain, owner.local, bare) is not None

    async def _prefs_of(self, owner: JID) -> ArchivePrefs:
        key = str(owner)
        prefs = self._prefs.get(key)
        if prefs is None:
            prefs = await self.store.prefs(key) or ArchivePrefs(self.options.default)
            if len(self._prefs) >= _PREFS_CACHE:
                self._prefs.clear()
            self._prefs[key] = prefs
        return prefs

    async def purge(self) -> None:
        removed = await self.store.purge_before(self.ctx.now() - self.options.retention)
        if removed:
            self.ctx.log.info("retention: deleted %d archived messages", removed)

    async def on_account_deleted(self, event: AccountEvent) -> None:
        owner = str(event.jid.bare())
        self._prefs.pop(owner, None)
        await self.store.delete_owner(owner)
        await self.ctx.shared_changed("mam-prefs", owner)

    async def on_prefs_changed_elsewhere(self, owner: str | None, _data: bytes) -> None:
        """Another node changed `owner`'s preferences (None: this node may have missed changes)."""
        if owner is None:
            self._prefs.clear()
        else:
            self._prefs.pop(owner, None)

    # -- queries --------------------------------------------------------------------------------

    async def on_form(self, request: IqRequest) -> etree._Element:
        require_owner(request, "archive")
        query = element(NS_MAM)
        query.append(forms.build(NS_MAM, [
            Field("with", "jid-single"), Field("start", "text-single"), Field("end", "text-single"),
            Field("before-id", "text-single"), Field("after-id", "text-single"), Field("ids", "text-multi"),
        ]))
        return query

    async def on_query(self, request: IqRequest) -> etree._Element:
        require_owner(request, "archive")
        payload = request.payload
        where = _filter(payload.find(forms.X))
        limit, after, before = self._rsm(payload.find(f"{{{NS_RSM}}}set"))
        owner = request.to_jid.bare()
        try:
            page = await self.store.page(str(owner), where, limit=limit, after=after, before=before)
        except UnknownArchiveId as exc:
            raise StanzaError.item_not_found(str(exc)) from None
        queryid = payload.get("queryid")
        items = page.items[::-1] if payload.find(f"{{{NS_MAM}}}flip-page") is not None else page.items
        for item in items:
            self._send(request, _result(item, owner, request.from_jid, queryid))
        return _fin(page, queryid)

    def _rsm(self, rsm: etree._Element | None) -> tuple[int, str | None, str | None]:
        """(page size, after, before) from an RSM <set/>; before "" asks for the last page."""
        limit = self.options.page_size
        if rsm is None:
            return limit, None, None
        if rsm.find(f"{{{NS_RSM}}}index") is not None:
            raise StanzaError.feature_not_implemented("Paging by index is not supported; use before/after")
        text = rsm.findtext(f"{{{NS_RSM}}}max")
        if text is not None:
            try:
                limit = int(text)
            except ValueError:
                raise StanzaError.bad_request("RSM <max/> must be a number") from None
            if limit < 0:
                raise StanzaError.bad_request("RSM <max/> must not be negative")
        after = rsm.findtext(f"{{{NS_RSM}}}after")
        before = rsm.findtext(f"{{{NS_RSM}}}before")
        if rsm.find(f"{{{NS_RSM}}}before") is not None and before is None:
            before = ""
        if after == "":
            raise StanzaError.bad_request("RSM <after/> needs an id")
        return min(limit, self.options.max_page_size), after, before

    def _send(self, request: IqRequest, message: etree._Element) -> None:
        session = request.session
        if session is not None and session.jid == request.from_jid:
            session.send(message)
        else:
            self.ctx.spawn(self.ctx.route(message), "result")

    async def on_metadata(self, request: IqRequest) -> etree._Element:
        require_owner(request, "archive")
        first, last = await self.store.bounds(str(request.to_jid.bare()))
        metadata = element(NS_MAM, "metadata")
        for name, item in (("start", first), ("end", last)):
            if item is not None:
                stamp = format_datetime(item.stamp)
                etree.SubElement(metadata, f"{{{NS_MAM}}}{name}", id=item.archive_id, timestamp=stamp)
        return metadata

    # -- preferences ----------------------------------------------------------------------------

    async def on_get_prefs(self, request: IqRequest) -> etree._Element:
        require_owner(request, "archive preferences")
        return _prefs_element(await self._prefs_of(request.to_jid.bare()))

    async def on_set_prefs(self, request: IqRequest) -> etree._Element:
        require_owner(request, "archive preferences")
        payload = request.payload
        default = payload.get("default")
        if default not in ("always", "never", "roster"):
            raise StanzaError.bad_request("'default' must be always, never or roster")
        prefs = ArchivePrefs(default, _jid_list(payload, "always"), _jid_list(payload, "never"))
        owner = request.to_jid.bare()
        await self.store.set_prefs(str(owner), prefs)
        self._prefs[str(owner)] = prefs
        await self.ctx.shared_changed("mam-prefs", str(owner))
        return _prefs_element(prefs)


def _filter(form: etree._Element | None) -> ArchiveFilter:
    """The query's filter from its data form; bad-request for unknown fields or bad values."""
    if form is None:
        return ArchiveFilter()
    if forms.form_type(form) not in (None, NS_MAM):
        raise StanzaError.bad_request(f"The query form's FORM_TYPE must be {NS_MAM}")
    values = forms.values(form)
    values.pop("FORM_TYPE", None)
    unknown = set(values) - _FIELDS
    if unknown:
        raise StanzaError.bad_request(f"Unknown query field: {sorted(unknown)[0]}")

    def one(var: str) -> str | None:
        found = [v for v in values.get(var, ()) if v.strip()]
        return found[0].strip() if found else None

    with_jid = with_resource = None
    if (text := one("with")) is not None:
        try:
            jid = JID.parse(text)
        except JIDError:
            raise StanzaError.bad_request(f"'with' is not a JID: {text!r}") from None
        with_jid, with_resource = str(jid.bare()), jid.resource
    start, end = one("start"), one("end")
    ids = values.get("ids")
    return ArchiveFilter(
        with_jid=with_jid,
        with_resource=with_resource,
        start=parse_stamp(start) if start is not None else None,
        end=parse_stamp(end) if end is not None else None,
        after_id=one("after-id"),
        before_id=one("before-id"),
        ids=tuple(v.strip() for v in ids if v.strip()) if ids is not None else None,
    )


def _result(item: ArchivedMessage, owner: JID, to: JID, queryid: str | None) -> etree._Element:
    message = etree.Element(f"{{{NS_CLIENT}}}message", nsmap={None: NS_CLIENT})
    message.set("from", str(owner))
    message.set("to", str(to))
    result = etree.SubElement(message, f"{{{NS_MAM}}}result", nsmap={None: NS_MAM})
    if queryid is not None:
        result.set("queryid", queryid)
    result.set("id", item.archive_id)
    forwarded = etree.SubElement(result, f"{{{NS_FORWARD}}}forwarded", nsmap={None: NS_FORWARD})
    etree.SubElement(forwarded, f"{{{NS_DELAY}}}delay", nsmap={None: NS_DELAY}, stamp=format_datetime(item.stamp))
    forwarded.append(etree.fromstring(item.stanza))
    return message


def _fin(page: ArchivePage, queryid: str | None) -> etree._Element:
    fin = element(NS_MAM, "fin")
    if queryid is not None:
        fin.set("queryid", queryid)
    if page.complete:
        fin.set("complete", "true")
    rsm = etree.SubElement(fin, f"{{{NS_RSM}}}set", nsmap={None: NS_RSM})
    if page.items:
        first = etree.SubElement(rsm, f"{{{NS_RSM}}}first", index=str(page.first_index))
        first.text = page.items[0].archive_id
        etree.SubElement(rsm, f"{{{NS_RSM}}}last").text = page.items[-1].archive_id
    etree.SubElement(rsm, f"{{{NS_RSM}}}count").text = str(page.count)
    return fin


def _jid_list(prefs: etree._Element, name: str) -> tuple[str, ...]:
    holder = prefs.find(f"{{{NS_MAM}}}{name}")
    if holder is None:
        return ()
    found: list[str] = []
    for item in holder.iterchildren(f"{{{NS_MAM}}}jid"):
        try:
            jid = str(JID.parse((item.text or "").strip()))
        except JIDError:
            raise StanzaError.bad_request(f"Not a JID in <{name}/>: {item.text!r}") from None
        if jid not in found:
            found.append(jid)
    return tuple(found)


def _prefs_element(prefs: ArchivePrefs) -> etree._Element:
    node = element(NS_MAM, "prefs")
    node.set("default", prefs.default)
    for name, jids in (("always", prefs.always), ("never", prefs.never)):
        holder = etree.SubElement(node, f"{{{NS_MAM}}}{name}")
        for jid in jids:
            etree.SubElement(holder, f"{{{NS_MAM}}}jid").text = jid
    return node


__all__ = ["Mam", "set_stanza_id", "should_archive"]
