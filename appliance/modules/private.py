"""Private XML Storage (XEP-0049): per-account XML fragments, keyed by their namespace."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from lxml import etree

from appliance.core.api import IqRequest, Module, ModuleContext, Scope, Size, Xep, option
from appliance.modules._util import element, encode_limited, parse_stored, require_owner
from appliance.storage.api import KeyValueStore
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
        data = await self._ctx.store(KeyValueStore).get(user.domain, user.local or "", STORE, namespace)
        if data is None:
            return None
        stored = parse_stored(data)
        return stored[0] if stored.tag == QUERY and len(stored) else stored

    async def put(self, user: JID, fragment: etree._Element) -> None:
        """Store a fragment under its namespace (listeners are not told: the caller made the change)."""
        namespace = etree.QName(fragment).namespace or ""
        kv = self._ctx.store(KeyValueStore)
        await kv.put(user.domain, user.local or "", STORE, namespace, etree.tostring(fragment))

    def listen(self, namespace: str, listener: PrivateListener) -> None:
        self._listeners.setdefault(namespace, []).append(listener)

    async def stored(self, user: JID, fragment: etree._Element, namespace: str) -> None:
        for listener in list(self._listeners.get(namespace, ())):
            await listener(user, fragment)


@dataclass(frozen=True, slots=True)
class PrivateOptions:
    """Private XML storage (XEP-0049)."""

    max_size: int = option(65_536, Size(1024, 16 * 1024**2), "Largest private XML item stored.")


class PrivateStorage(Module):
    """jabber:iq:private get/set of the sender's own data, stored in the key-value store ("private")."""

    name = "private"
    options = PrivateOptions
    implements = (Xep(49, "1.2"),)

    ctx: ModuleContext
    max_size: int

    def setup(self, ctx: ModuleContext[PrivateOptions]) -> None:
        self.ctx = ctx
        self.max_size = ctx.options.max_size
        self.service = PrivateXml(ctx)
        ctx.provide(PrivateXml, self.service)
        ctx.iq("get", QUERY, self.get, scope=Scope.ACCOUNT)
        ctx.iq("set", QUERY, self.set, scope=Scope.ACCOUNT)
        # Clients look for the feature on their server, so advertise it there too.
        ctx.feature(NS_PRIVATE)

    async def get(self, request: IqRequest) -> etree._Element:
        """Return the stored fragment(s), or the requested empty element when nothing is stored."""
        require_owner(request, "private XML storage")
        children = _children(request.payload)
        if not children:
            raise StanzaError.not_acceptable("The query must hold an element in its own namespace")
        if len(children) > 1:
            # XEP-0049 §2.3: a client MUST NOT query for more than one namespace in a single get.
            raise StanzaError.bad_request("Ask for exactly one namespace")
        fragment, namespace = children[0], _namespace(children[0])
        target = request.to_jid
        assert target.local is not None
        data = await self.ctx.store(KeyValueStore).get(target.domain, target.local, STORE, namespace)
        query = element(NS_PRIVATE)
        if data is None:
            query.append(copy.deepcopy(fragment))
            return query
        stored = parse_stored(data)
        # Several elements of one namespace are kept inside a jabber:iq:private <query/> wrapper.
        query.extend(list(stored) if stored.tag == QUERY else [stored])
        return query

    async def set(self, request: IqRequest) -> None:
        """Store (replace) each namespace's elements; a set MAY hold several elements (XEP-0049 §2.3)."""
        require_owner(request, "private XML storage")
        children = _children(request.payload)
        if not children:
            raise StanzaError.not_acceptable("The query must hold an element in its own namespace")
        by_namespace: dict[str, list[etree._Element]] = {}
        for child in children:
            by_namespace.setdefault(_namespace(child), []).append(child)
        target = request.to_jid
        assert target.local is not None
        encoded = {ns: encode_limited(_bundle(elements), self.max_size, "private XML fragment")
                   for ns, elements in by_namespace.items()}
        for namespace, data in encoded.items():
            await self.ctx.store(KeyValueStore).put(target.domain, target.local, STORE, namespace, data)
        for namespace, elements in by_namespace.items():
            for fragment in elements:
                await self.service.stored(target.bare(), fragment, namespace)


def _children(payload: etree._Element) -> list[etree._Element]:
    return [child for child in payload if isinstance(child.tag, str)]


def _namespace(child: etree._Element) -> str:
    """The namespace an element is stored under, after the XEP-0049 §2.3 checks (not-acceptable)."""
    namespace = etree.QName(child).namespace
    if not namespace or namespace == NS_PRIVATE:
        raise StanzaError.not_acceptable("The stored element needs its own namespace")
    if namespace.startswith("jabber:"):
        raise StanzaError.not_acceptable("Namespaces starting with 'jabber:' are reserved")
    return namespace


def _bundle(elements: list[etree._Element]) -> etree._Element:
    """One element stored as itself; several of one namespace inside a <query/> wrapper."""
    if len(elements) == 1:
        return elements[0]
    wrapper = element(NS_PRIVATE)
    wrapper.extend(copy.deepcopy(e) for e in elements)
    return wrapper
