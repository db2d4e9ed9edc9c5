"""vcard-temp (XEP-0054): each account's vCard, readable by anyone, written only by its owner."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from appliance.core.api import IqRequest, Module, ModuleContext, Scope, Size, Xep, option
from appliance.modules._util import element, encode_limited, parse_stored, require_owner
from appliance.storage.api import KeyValueStore
from appliance.xmpp.jid import JID
from appliance.xmpp.ns import NS_VCARD

VCARD = f"{{{NS_VCARD}}}vCard"
STORE = "vcard"
KEY = "current"


class VCards:
    """vCard-temp of local accounts for other modules (the avatar conversion of XEP-0398)."""

    def __init__(self, ctx: ModuleContext) -> None:
        self._ctx = ctx

    async def get(self, user: JID) -> etree._Element | None:
        data = await self._ctx.store(KeyValueStore).get(user.domain, user.local or "", STORE, KEY)
        return None if data is None else parse_stored(data)

    async def put(self, user: JID, vcard: etree._Element) -> None:
        await self._ctx.store(KeyValueStore).put(user.domain, user.local or "", STORE, KEY, etree.tostring(vcard))


@dataclass(frozen=True, slots=True)
class VcardOptions:
    """vCards (XEP-0054)."""

    max_size: int = option(65_536, Size(1024, 16 * 1024**2), "Largest vCard stored.")


class VCardTemp(Module):
    """Stores vCards in the key-value store ("vcard") and answers for the server's own (empty) vCard."""

    name = "vcard"
    options = VcardOptions
    implements = (Xep(54, "1.2"),)

    ctx: ModuleContext
    max_size: int

    def setup(self, ctx: ModuleContext[VcardOptions]) -> None:
        self.ctx = ctx
        self.max_size = ctx.options.max_size
        ctx.provide(VCards, VCards(ctx))
        ctx.iq("get", VCARD, self.get_account, scope=Scope.ACCOUNT)
        ctx.iq("set", VCARD, self.set_account, scope=Scope.ACCOUNT)
        ctx.iq("get", VCARD, self.get_server, scope=Scope.SERVER)

    async def get_account(self, request: IqRequest) -> etree._Element:
        """The account's vCard, or an empty one when it never published any."""
        target = request.to_jid
        assert target.local is not None
        data = await self.ctx.store(KeyValueStore).get(target.domain, target.local, STORE, KEY)
        return element(NS_VCARD, "vCard") if data is None else parse_stored(data)

    async def set_account(self, request: IqRequest) -> None:
        """Replace the sender's own vCard; an empty <vCard/> removes it."""
        require_owner(request, "vCard")
        target = request.to_jid
        assert target.local is not None
        vcard = request.payload
        if len(vcard) == 0 and not (vcard.text or "").strip():
            await self.ctx.store(KeyValueStore).delete(target.domain, target.local, STORE, KEY)
            return
        data = encode_limited(vcard, self.max_size, "vCard")
        await self.ctx.store(KeyValueStore).put(target.domain, target.local, STORE, KEY, data)

    async def get_server(self, request: IqRequest) -> etree._Element:
        """The server publishes no vCard of its own."""
        return element(NS_VCARD, "vCard")
