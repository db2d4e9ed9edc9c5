"""Service discovery (XEP-0030) for the server and for accounts, with XEP-0128 extension forms."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from lxml import etree

from appliance.core.api import IqRequest, Module, ModuleContext, Scope, Xep
from appliance.modules._util import element, sees_presence
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.ns import NS_DISCO_INFO, NS_DISCO_ITEMS

INFO = f"{{{NS_DISCO_INFO}}}query"
ITEMS = f"{{{NS_DISCO_ITEMS}}}query"

SERVER_NAME = "Parlour"


@dataclass(frozen=True, slots=True)
class DiscoItem:
    """One entry of the server's disco#items list."""

    jid: str
    node: str | None = None
    name: str | None = None


class DiscoItems:
    """The server's disco#items: services and components add their addresses here (`ctx.require`)."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: dict[tuple[str, str | None], DiscoItem] = {}

    def add(self, jid: str, *, name: str | None = None, node: str | None = None) -> None:
        """List `jid` (and `node`); adding the same pair again replaces its name."""
        self._items[(jid, node)] = DiscoItem(jid, node, name)

    def remove(self, jid: str, *, node: str | None = None) -> bool:
        """Drop an item; False when it was not listed."""
        return self._items.pop((jid, node), None) is not None

    def __iter__(self) -> Iterator[DiscoItem]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)


class DiscoInfoNodes(set[str]):
    """Nodes answered with the server's own disco#info (an entity-capabilities node like NODE#ver)."""


class DiscoNode(Protocol):
    """A module's nodes of the server's disco tree (XEP-0050 command nodes): `owns` says which; `info` and
    `items` fill the answer to the requester (or raise a StanzaError)."""

    def owns(self, node: str) -> bool: ...

    async def info(self, request: IqRequest, query: etree._Element) -> None: ...

    async def items(self, request: IqRequest, query: etree._Element) -> None: ...


class DiscoNodes(list[DiscoNode]):
    """The node providers of the server's disco tree (`ctx.require(DiscoNodes).append(provider)`)."""

    def owner(self, node: str | None) -> DiscoNode | None:
        return next((p for p in self if node and p.owns(node)), None)


class Disco(Module):
    """Answers disco#info and disco#items addressed to the server or to an account's bare JID."""

    name = "disco"
    implements = (Xep(30, "2.5.0"), Xep(128, "1.0.1"))

    ctx: ModuleContext
    items: DiscoItems

    def setup(self, ctx: ModuleContext) -> None:
        self.ctx = ctx
        self.items = DiscoItems()
        ctx.provide(DiscoItems, self.items)
        self.info_nodes = DiscoInfoNodes()
        ctx.provide(DiscoInfoNodes, self.info_nodes)
        self.nodes = DiscoNodes()
        ctx.provide(DiscoNodes, self.nodes)
        ctx.identity("server", "im", SERVER_NAME)
        ctx.iq("get", INFO, self.server_info, scope=Scope.SERVER)
        ctx.iq("get", ITEMS, self.server_items, scope=Scope.SERVER)
        ctx.iq("get", INFO, self.account_info, scope=Scope.ACCOUNT)
        ctx.iq("get", ITEMS, self.account_items, scope=Scope.ACCOUNT, any_account=True)

    # -- the server ---------------------------------------------------------------------------

    async def server_info(self, request: IqRequest) -> etree._Element:
        """Identities, every feature of the host and the XEP-0128 forms other modules contribute."""
        answer = await self._module_node(request, NS_DISCO_INFO)
        if answer is not None:
            return answer
        node = request.payload.get("node")
        if node not in self.info_nodes:
            _refuse_node(request)
        query = element(NS_DISCO_INFO)
        if node:
            query.set("node", node)
        for ident in self.ctx.identities:
            _add_identity(query, ident.category, ident.type, ident.name)
        _add_features(query, self.ctx.features)
        for provider in self.ctx.extensions:
            form = provider()
            if form is not None:
                query.append(form)
        return query

    async def server_items(self, request: IqRequest) -> etree._Element:
        answer = await self._module_node(request, NS_DISCO_ITEMS)
        if answer is not None:
            return answer
        _refuse_node(request)
        query = element(NS_DISCO_ITEMS)
        for item in self.items:
            entry = etree.SubElement(query, f"{{{NS_DISCO_ITEMS}}}item", jid=item.jid)
            if item.node is not None:
                entry.set("node", item.node)
            if item.name is not None:
                entry.set("name", item.name)
        for domain in sorted(self.ctx.components):
            etree.SubElement(query, f"{{{NS_DISCO_ITEMS}}}item", jid=domain)
        return query

    async def _module_node(self, request: IqRequest, namespace: str) -> etree._Element | None:
        """The answer of the module that owns the requested node (None when none does)."""
        node = request.payload.get("node")
        provider = self.nodes.owner(node)
        if provider is None:
            return None
        query = element(namespace)
        query.set("node", node or "")
        await (provider.info if namespace == NS_DISCO_INFO else provider.items)(request, query)
        return query

    # -- an account ---------------------------------------------------------------------------

    async def account_info(self, request: IqRequest) -> etree._Element:
        await self._check_account_access(request)
        _refuse_node(request)
        query = element(NS_DISCO_INFO)
        _add_identity(query, "account", "registered")
        for ident in self.ctx.account_identities:
            _add_identity(query, ident.category, ident.type, ident.name)
        _add_features(query, self.ctx.account_features)
        return query

    async def account_items(self, request: IqRequest) -> etree._Element:
        # XEP-0030 §8 rule 2: for an account that does not exist (node or not), or a requester who may
        # not see its presence, the answer MUST be an empty result, never an error that tells them apart.
        query = element(NS_DISCO_ITEMS)
        if not await self.ctx.accounts.exists(request.to_jid) or not await sees_presence(
            self.ctx, request.to_jid, request.from_jid
        ):
            return query
        _refuse_node(request)
        return query

    async def _check_account_access(self, request: IqRequest) -> None:
        # XEP-0030 §8: an account's details are for the owner and those it shares presence with;
        # everybody else gets the same answer as for an account that does not exist.
        if not await sees_presence(self.ctx, request.to_jid, request.from_jid):
            raise StanzaError.service_unavailable()


def _refuse_node(request: IqRequest) -> None:
    node = request.payload.get("node")
    if node:
        raise StanzaError.item_not_found(f"No such node: {node}")


def _add_identity(query: etree._Element, category: str, type_: str, name: str = "") -> None:
    ident = etree.SubElement(query, f"{{{NS_DISCO_INFO}}}identity", category=category, type=type_)
    if name:
        ident.set("name", name)


def _add_features(query: etree._Element, features: set[str]) -> None:
    for var in sorted(features):
        etree.SubElement(query, f"{{{NS_DISCO_INFO}}}feature", var=var)


__all__ = ["Disco", "DiscoInfoNodes", "DiscoItem", "DiscoItems", "DiscoNode", "DiscoNodes"]
