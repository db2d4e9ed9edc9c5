"""Private XML Storage (XEP-0049): per-account XML fragments, keyed by their namespace."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable

from lxml import etree

from appliance.core.api import IqRequest, Module, ModuleContext, Scope, Xep
from appliance.modules._util import element, encode_limited, parse_stored, require_owner
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.jid import JID
from appliance.xmpp.ns import NS_PRIVATE

QUERY = f"{{{NS_PRIVATE}}}query"
STORE = "private"


PrivateListener = Callable[[JID, etree._Element], Awaitable[None]]


class PrivateXml:
    """Private XML of local accounts for other modules (bookmark conversion): read, write, and hear
    about fragments clients store."""

    def __init__(self, ctx: ModuleContext) -> None:
        self._ctx = ctx
        self._listeners: dict[str, list[PrivateListener]] = {}

    async def get(self, user: JID, namespace: str) -> etree._Element | None:
        data = await self._ctx.stores.kv.get(user.domain, user.local or "", STORE, namespace)
        return None if data is None else parse_stored(data)

    async def put(self, user: JID, fragment: etree._Element) -> None:
        """Store a fragment under its namespace (listeners are not told: the caller made the change)."""
        namespace = etree.QName(fragment).namespace or ""
        await self._ctx.stores.kv.put(user.domain, user.local or "", STORE, namespace, etree.tostring(fragment))

    def listen(self, namespace: str, listener: PrivateListener) -> None:
        self._listeners.setdefault(namespace, []).append(listener)

    async def stored(self, user: JID, fragment: etree._Element, namespace: str) -> None:
        for listener in list(self._listeners.get(namespace, ())):
            await listener(user, fragment)


class PrivateStorage(Module):
    """jabber:iq:private get/set of the sender's own data, stored in the key-value store ("private")."""

    name = "private"
    implements = (Xep(49, "1.2"),)

    ctx: ModuleContext
    max_size: int

    def setup(self, ctx: ModuleContext) -> None:
        self.ctx = ctx
        self.max_size = ctx.options.max_size
        self.service = PrivateXml(ctx)
        ctx.provide(PrivateXml, self.service)
        ctx.iq("get", QUERY, self.get, scope=Scope.ACCOUNT)
        ctx.iq("set", QUERY, self.set, scope=Scope.ACCOUNT)
        # Clients look for the feature on their server, so advertise it there too.
        ctx.feature(NS_PRIVATE)

    async def get(self, request: IqRequest) -> etree._Element:
        """Return the stored fragment, or the requested empty element when nothing is stored."""
        fragment, namespace = _fragment(request)
        target = request.to_jid
        assert target.local is not None
        data = await self.ctx.stores.kv.get(target.domain, target.local, STORE, namespace)
        query = element(NS_PRIVATE)
        query.append(copy.deepcopy(fragment) if data is None else parse_stored(data))
        return query

    async def set(self, request: IqRequest) -> None:
        """Store (replace) the fragment under its namespace."""
        fragment, namespace = _fragment(request)
        data = encode_limited(fragment, self.max_size, "private XML fragment")
        target = request.to_jid
        assert target.local is not None
        await self.ctx.stores.kv.put(target.domain, target.local, STORE, namespace, data)
        await self.service.stored(target.bare(), fragment, namespace)


def _fragment(request: IqRequest) -> tuple[etree._Element, str]:
    """The one namespaced child of the query and its namespace, after the access and shape checks."""
    require_owner(request, "private XML storage")
    children = [child for child in request.payload if isinstance(child.tag, str)]
    if len(children) != 1:
        raise StanzaError.bad_request("The query must hold exactly one child element")
    namespace = etree.QName(children[0]).namespace
    if not namespace:
        raise StanzaError.bad_request("The stored element needs its own namespace")
    if namespace.startswith("jabber:"):
        raise StanzaError.not_acceptable("Namespaces starting with 'jabber:' are reserved")
    return children[0], namespace
