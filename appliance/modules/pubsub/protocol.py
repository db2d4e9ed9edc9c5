"""XEP-0060 requests to engine calls: parses <pubsub/> and <pubsub#owner/> IQs and builds the answers."""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree

from appliance.core.api import IqRequest
from appliance.modules.pubsub import errors
from appliance.modules.pubsub.config import (
    NODE_CONFIG,
    PUBLISH_OPTIONS,
    SUBSCRIBE_OPTIONS,
    SubscribeOptions,
    config_form,
    options_form,
)
from appliance.modules.pubsub.engine import Engine, Service
from appliance.storage.api import PubSubItem, PubSubSubscription
from appliance.xmpp import forms
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.jid import JID, JIDError
from appliance.xmpp.ns import NS_PUBSUB, NS_PUBSUB_OWNER

PUBSUB = f"{{{NS_PUBSUB}}}pubsub"
PUBSUB_OWNER = f"{{{NS_PUBSUB_OWNER}}}pubsub"

# pubsub#… features of every service built on the engine; collections are not among them.
FEATURES = tuple(
    f"{NS_PUBSUB}#{name}"
    for name in (
        "access-authorize", "access-open", "access-presence", "access-roster", "access-whitelist",
        "config-node", "config-node-max", "create-and-configure", "create-nodes", "delete-items",
        "delete-nodes", "get-pending", "instant-nodes", "item-ids", "last-published", "manage-subscriptions",
        "member-affiliation", "modify-affiliations", "outcast-affiliation", "persistent-items", "publish",
        "publish-only-affiliation", "publish-options", "publisher-affiliation", "purge-nodes",
        "retract-items", "retrieve-affiliations", "retrieve-default", "retrieve-items",
        "retrieve-subscriptions", "subscribe", "subscription-notifications", "subscription-options",
    )
)


def _q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def _node(child: etree._Element, *, required: bool = True) -> str:
    node = child.get("node")
    if not node and required:
        if child.tag in (_q(NS_PUBSUB, "subscribe"), _q(NS_PUBSUB, "items")):
            raise errors.unsupported("collections", "This service has no collection nodes")
        raise errors.nodeid_required()
    return node or ""


def _jid(child: etree._Element, default: JID) -> JID:
    text = child.get("jid")
    if text is None:
        return default
    try:
        return JID.parse(text)
    except JIDError:
        raise errors.invalid_jid() from None


def _form(parent: etree._Element | None, namespace: str) -> etree._Element | None:
    return None if parent is None else forms.find(parent, namespace)


def _item_element(ns: str, item: PubSubItem) -> etree._Element:
    entry = etree.Element(_q(ns, "item"), id=item.item_id)
    if item.payload:
        entry.append(etree.fromstring(item.payload))
    return entry


def _subscription_element(ns: str, sub: PubSubSubscription, *, with_node: bool = True) -> etree._Element:
    entry = etree.Element(_q(ns, "subscription"), jid=sub.jid, subscription=sub.state, subid=sub.subid)
    if with_node:
        entry.set("node", sub.node)
    return entry


def _reply(ns: str, *children: etree._Element) -> etree._Element:
    root = etree.Element(_q(ns, "pubsub"), nsmap={None: ns})
    for child in children:
        root.append(child)
    return root


class PubSubProtocol:
    """Answers <pubsub/> and <pubsub#owner/> IQs for the service `resolve` picks for each request."""

    def __init__(
        self, engine: Engine, resolve: Callable[[IqRequest], Service], may_create: Callable[[IqRequest], bool]
    ) -> None:
        self.engine = engine
        self.resolve = resolve
        self.may_create = may_create

    # -- http://jabber.org/protocol/pubsub ------------------------------------------------------

    async def user(self, request: IqRequest) -> etree._Element | None:
        svc = self.resolve(request)
        actor = request.from_jid
        children = [c for c in request.payload if isinstance(c.tag, str)]
        if not children:
            raise StanzaError.bad_request("Empty pubsub request")
        first = children[0]
        local = etree.QName(first).localname if etree.QName(first).namespace == NS_PUBSUB else ""
        rest = {etree.QName(c).localname: c for c in children[1:] if etree.QName(c).namespace == NS_PUBSUB}
        engine = self.engine
        if request.type == "set":
            if local == "create":
                if not self.may_create(request):
                    raise StanzaError.forbidden("You may not create nodes on this service")
                configure = rest.get("configure")
                form = _form(configure, NODE_CONFIG)
                if form is not None and forms.values(form).get("pubsub#node_type", ("leaf",))[0] == "collection":
                    raise errors.unsupported("collections", "This service has no collection nodes")
                name = await engine.create(svc, actor, first.get("node") or None, form)
                return _reply(NS_PUBSUB, etree.Element(_q(NS_PUBSUB, "create"), node=name))
            if local == "publish":
                return await self._publish(svc, request, first, rest.get("publish-options"))
            if local == "retract":
                node = _node(first)
                notify = first.get("notify")
                flag = None if notify is None else notify in ("1", "true")
                items = first.findall(_q(NS_PUBSUB, "item"))
                if not items or any(not i.get("id") for i in items):
                    raise StanzaError.bad_request("Say which item to retract", app_element=errors.app("item-required"))
                for item in items:
                    await engine.retract(svc, actor, node, item.get("id", ""), flag)
                return None
            if local == "subscribe":
                node = _node(first)
                sub = await engine.subscribe(svc, actor, node, _jid(first, actor),
                                             _form(rest.get("options"), SUBSCRIBE_OPTIONS))
                return _reply(NS_PUBSUB, _subscription_element(NS_PUBSUB, sub))
            if local == "unsubscribe":
                await engine.unsubscribe(svc, actor, _node(first), _jid(first, actor))
                return None
            if local == "options":
                form = _form(first, SUBSCRIBE_OPTIONS)
                if form is None:
                    raise StanzaError.bad_request("Submit a subscribe_options form",
                                                  app_element=errors.app("invalid-options"))
                await engine.set_options(svc, actor, _node(first), _jid(first, actor), form)
                return None
        else:
            if local == "items":
                return await self._items(svc, actor, first)
            if local == "subscriptions":
                subs = await engine.subscriptions_of(svc, actor, first.get("node"))
                wrapper = etree.Element(_q(NS_PUBSUB, "subscriptions"))
                for sub in subs:
                    wrapper.append(_subscription_element(NS_PUBSUB, sub))
                return _reply(NS_PUBSUB, wrapper)
            if local == "affiliations":
                found = await engine.affiliations_of(svc, actor, first.get("node"))
                wrapper = etree.Element(_q(NS_PUBSUB, "affiliations"))
                for node, affiliation in found.items():
                    etree.SubElement(wrapper, _q(NS_PUBSUB, "affiliation"), node=node, affiliation=affiliation)
                return _reply(NS_PUBSUB, wrapper)
            if local == "options":
                node = _node(first)
                jid = _jid(first, actor)
                options = await engine.options(svc, actor, node, jid)
                wrapper = etree.Element(_q(NS_PUBSUB, "options"), node=node, jid=str(jid))
                wrapper.append(options_form(options))
                return _reply(NS_PUBSUB, wrapper)
            if local == "default":
                wrapper = etree.Element(_q(NS_PUBSUB, "default"))
                wrapper.append(options_form(SubscribeOptions()))
                return _reply(NS_PUBSUB, wrapper)
        raise errors.unsupported(local or "unknown", f"Unsupported pubsub request <{local}/>")

    async def _publish(
        self, svc: Service, request: IqRequest, publish: etree._Element, options: etree._Element | None
    ) -> etree._Element:
        node = _node(publish)
        items = publish.findall(_q(NS_PUBSUB, "item"))
        if len(items) > 1:
            raise StanzaError.bad_request("Publish one item at a time", app_element=errors.app("invalid-payload"))
        item = items[0] if items else None
        payloads = [] if item is None else [c for c in item if isinstance(c.tag, str)]
        if len(payloads) > 1:
            raise StanzaError.bad_request("An item carries one payload element",
                                          app_element=errors.app("invalid-payload"))
        form = _form(options, PUBLISH_OPTIONS)
        if options is not None and form is None and len(options):
            raise StanzaError.bad_request("publish-options needs a publish-options form")
        if item is None and form is None and not await self._may_publish_empty(svc, node):
            raise StanzaError.bad_request("Publish an item", app_element=errors.app("item-required"))
        item_id = await self.engine.publish(
            svc, request.from_jid, node, None if item is None else item.get("id") or None,
            payloads[0] if payloads else None, form,
        )
        published = etree.Element(_q(NS_PUBSUB, "publish"), node=node)
        etree.SubElement(published, _q(NS_PUBSUB, "item"), id=item_id)
        return _reply(NS_PUBSUB, published)

    async def _may_publish_empty(self, svc: Service, node: str) -> bool:
        view = await self.engine.find(svc, node)
        return view is not None and not view.config.persist_items and not view.config.deliver_payloads

    async def _items(self, svc: Service, actor: JID, request: etree._Element) -> etree._Element:
        node = _node(request)
        limit: int | None = None
        raw = request.get("max_items")
        if raw is not None:
            try:
                limit = int(raw)
            except ValueError:
                raise StanzaError.bad_request("max_items must be a number") from None
            if limit < 1:
                raise StanzaError.bad_request("max_items must be positive")
        ids = [i.get("id", "") for i in request.findall(_q(NS_PUBSUB, "item")) if i.get("id")]
        found = await self.engine.items(svc, actor, node, limit=limit, ids=ids or None)
        wrapper = etree.Element(_q(NS_PUBSUB, "items"), node=node)
        for item in found:
            wrapper.append(_item_element(NS_PUBSUB, item))
        return _reply(NS_PUBSUB, wrapper)

    # -- http://jabber.org/protocol/pubsub#owner ------------------------------------------------

    async def owner(self, request: IqRequest) -> etree._Element | None:
        svc = self.resolve(request)
        actor = request.from_jid
        children = [c for c in request.payload if isinstance(c.tag, str)]
        if len(children) != 1 or etree.QName(children[0]).namespace != NS_PUBSUB_OWNER:
            raise StanzaError.bad_request("A pubsub#owner request holds one element")
        first = children[0]
        local = etree.QName(first).localname
        engine = self.engine
        if local == "default" and request.type == "get":
            wrapper = etree.Element(_q(NS_PUBSUB_OWNER, "default"))
            wrapper.append(config_form(svc.policy.default))
            return _reply(NS_PUBSUB_OWNER, wrapper)
        node = _node(first)
        if request.type == "get":
            if local == "configure":
                config = await engine.configuration(svc, actor, node)
                wrapper = etree.Element(_q(NS_PUBSUB_OWNER, "configure"), node=node)
                wrapper.append(config_form(config))
                return _reply(NS_PUBSUB_OWNER, wrapper)
            if local == "subscriptions":
                wrapper = etree.Element(_q(NS_PUBSUB_OWNER, "subscriptions"), node=node)
                for sub in await engine.node_subscriptions(svc, actor, node):
                    wrapper.append(_subscription_element(NS_PUBSUB_OWNER, sub, with_node=False))
                return _reply(NS_PUBSUB_OWNER, wrapper)
            if local == "affiliations":
                wrapper = etree.Element(_q(NS_PUBSUB_OWNER, "affiliations"), node=node)
                for jid, affiliation in (await engine.node_affiliations(svc, actor, node)).items():
                    etree.SubElement(wrapper, _q(NS_PUBSUB_OWNER, "affiliation"), jid=jid, affiliation=affiliation)
                return _reply(NS_PUBSUB_OWNER, wrapper)
        else:
            if local == "configure":
                form = forms.find(first, NODE_CONFIG)
                if form is None:
                    raise StanzaError.bad_request("Submit a node_config form")
                await engine.configure(svc, actor, node, form)
                return None
            if local == "delete":
                redirect = first.find(_q(NS_PUBSUB_OWNER, "redirect"))
                await engine.delete(svc, actor, node, None if redirect is None else redirect.get("uri"))
                return None
            if local == "purge":
                await engine.purge(svc, actor, node)
                return None
            if local == "subscriptions":
                for entry in first.findall(_q(NS_PUBSUB_OWNER, "subscription")):
                    await engine.set_subscription(
                        svc, actor, node, _jid(entry, actor), entry.get("subscription", "subscribed")
                    )
                return None
            if local == "affiliations":
                for entry in first.findall(_q(NS_PUBSUB_OWNER, "affiliation")):
                    await engine.set_affiliation(svc, actor, node, _jid(entry, actor), entry.get("affiliation", ""))
                return None
        raise errors.unsupported(local, f"Unsupported pubsub#owner request <{local}/>")
