"""The publish-subscribe engine (XEP-0060) behind both the pubsub service and PEP (XEP-0163).

It owns the rules: nodes and their configuration, affiliations, access models, subscriptions, items
and which notifications a change causes. It knows nothing about IQ parsing or routing: requests come
in as calls, notifications leave through the `Delivery` given to it, and roster lookups for the
presence and roster access models go through `Contacts`.
"""

from __future__ import annotations

import copy
import dataclasses
import secrets
import time
from dataclasses import dataclass
from typing import Protocol

from lxml import etree

from appliance.modules.pubsub import errors
from appliance.modules.pubsub.config import (
    AUTHORIZATION,
    NodeConfig,
    SubscribeOptions,
    apply_form,
    apply_options,
    unmet_preconditions,
)
from appliance.storage.api import AlreadyExists, PubSubItem, PubSubStore, PubSubSubscription
from appliance.xmpp import forms
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.forms import Field
from appliance.xmpp.jid import JID
from appliance.xmpp.ns import NS_PUBSUB_EVENT

AFFILIATIONS = ("owner", "publisher", "publish-only", "member", "none", "outcast")
PUBLISHERS = frozenset({"owner", "publisher", "publish-only"})
READERS = frozenset({"owner", "publisher", "member"})  # may always subscribe and retrieve
PRESENCE_SHARING = frozenset({"from", "both"})
SUBSCRIBED = "subscribed"
PENDING = "pending"


def event_element(child: etree._Element) -> etree._Element:
    """<event xmlns='…pubsub#event'> around `child`."""
    event = etree.Element(f"{{{NS_PUBSUB_EVENT}}}event", nsmap={None: NS_PUBSUB_EVENT})
    event.append(child)
    return event


def ev(tag: str, **attrs: str) -> etree._Element:
    return etree.Element(f"{{{NS_PUBSUB_EVENT}}}{tag}", attrs)


def items_event(node: str, items: list[PubSubItem], *, payloads: bool) -> etree._Element:
    """The notification of published items, with or without their payloads."""
    wrapper = ev("items", node=node)
    for item in items:
        entry = etree.SubElement(wrapper, f"{{{NS_PUBSUB_EVENT}}}item", id=item.item_id)
        entry.set("publisher", item.publisher)
        if payloads and item.payload:
            entry.append(etree.fromstring(item.payload))
    return event_element(wrapper)


@dataclass(frozen=True, slots=True)
class Policy:
    """What differs between services: limits, the default node configuration and PEP's single owner."""

    max_items: int  # what "max" means and the highest accepted pubsub#max_items
    default: NodeConfig
    owner: str | None = None  # PEP: the account's bare JID owns every node
    auto_create: bool = False  # PEP: publishing to a missing node creates it
    max_nodes: int = 1000


@dataclass(frozen=True, slots=True)
class Service:
    """A pubsub service address (a component domain or an account's bare JID) and its policy."""

    jid: str
    policy: Policy


@dataclass(frozen=True, slots=True)
class Notification:
    """A change subscribers hear about: the node, its config, the <event/> and its explicit subscribers.

    `kind` is "items", "retract", "purge", "delete", "configuration"; PEP adds implicit subscribers."""

    service: Service
    node: str
    config: NodeConfig
    kind: str
    event: etree._Element
    subscribers: tuple[PubSubSubscription, ...]


class Contacts(Protocol):
    """The roster of a node owner, for the presence and roster access models."""

    async def relation(self, owner: str, entity: str) -> tuple[str, tuple[str, ...]] | None:
        """(subscription, groups) of `entity` on `owner`'s roster; None when absent or not local."""
        ...


class Delivery(Protocol):
    """How the engine's messages leave: notifications and direct messages from the service."""

    async def notify(self, notification: Notification) -> None: ...

    async def send(self, service: Service, to: str, payload: etree._Element) -> None: ...


@dataclass(frozen=True, slots=True)
class NodeView:
    """A loaded node: its name, configuration and affiliations (bare JID → affiliation)."""

    name: str
    config: NodeConfig
    affiliations: dict[str, str]


class Engine:
    """Node, item and subscription logic over a `PubSubStore`."""

    def __init__(self, store: PubSubStore, contacts: Contacts, delivery: Delivery) -> None:
        self.store = store
        self.contacts = contacts
        self.delivery = delivery

    # -- nodes ----------------------------------------------------------------------------------

    async def load(self, svc: Service, node: str) -> NodeView:
        record = await self.store.node(svc.jid, node)
        if record is None:
            raise errors.node_missing(node)
        config = NodeConfig.from_json(record.config, svc.policy.default)
        affiliations = await self.store.affiliations(svc.jid, node)
        if svc.policy.owner is not None:
            affiliations[svc.policy.owner] = "owner"
        return NodeView(node, config, affiliations)

    async def find(self, svc: Service, node: str) -> NodeView | None:
        try:
            return await self.load(svc, node)
        except StanzaError:
            return None

    async def create(
        self, svc: Service, actor: JID, node: str | None, form: etree._Element | None = None,
        *, base: NodeConfig | None = None,
    ) -> str:
        """Create a node (an instant node when `node` is None) owned by `actor`; returns its name."""
        if svc.policy.owner is not None and str(actor.bare()) != svc.policy.owner:
            raise StanzaError.forbidden("Only the account itself may create its PEP nodes")
        config = base or svc.policy.default
        if form is not None:
            config = apply_form(config, form, svc.policy.max_items)
        self._check_limit(svc, config)
        if len(await self.store.nodes(svc.jid)) >= svc.policy.max_nodes:
            raise StanzaError.not_allowed("This service holds as many nodes as it may", type="cancel")
        name = node or secrets.token_hex(8)
        try:
            await self.store.create_node(svc.jid, name, config.to_json(), str(actor.bare()))
        except AlreadyExists:
            raise StanzaError.conflict(f"A node {name!r} already exists", type="cancel") from None
        return name

    async def configuration(self, svc: Service, actor: JID, node: str) -> NodeConfig:
        view = await self.load(svc, node)
        self._require_owner(view, actor)
        return view.config

    async def configure(self, svc: Service, actor: JID, node: str, form: etree._Element) -> None:
        view = await self.load(svc, node)
        self._require_owner(view, actor)
        if form.get("type") == "cancel":
            return
        config = apply_form(view.config, form, svc.policy.max_items)
        self._check_limit(svc, config)
        await self.store.configure_node(svc.jid, node, config.to_json())
        limit = config.item_limit(svc.policy.max_items) if config.persist_items else 1
        if limit < view.config.item_limit(svc.policy.max_items):
            await self._trim(svc, node, limit)
        if config.notify_config and config.deliver_notifications:
            await self._notify(svc, node, config, "configuration", event_element(ev("configuration", node=node)))

    async def delete(self, svc: Service, actor: JID, node: str, redirect: str | None = None) -> None:
        view = await self.load(svc, node)
        self._require_owner(view, actor)
        subscribers = await self._subscribers(svc, node)
        await self.store.delete_node(svc.jid, node)
        if view.config.notify_delete:
            deleted = ev("delete", node=node)
            if redirect:
                etree.SubElement(deleted, f"{{{NS_PUBSUB_EVENT}}}redirect", uri=redirect)
            await self.delivery.notify(
                Notification(svc, node, view.config, "delete", event_element(deleted), subscribers)
            )

    async def purge(self, svc: Service, actor: JID, node: str) -> None:
        view = await self.load(svc, node)
        self._require_owner(view, actor)
        if not view.config.persist_items:
            raise errors.unsupported("persistent-items", "This node does not persist items")
        await self.store.purge(svc.jid, node)
        if view.config.notify_retract:
            await self._notify(svc, node, view.config, "purge", event_element(ev("purge", node=node)))

    async def nodes(self, svc: Service, actor: JID) -> list[NodeView]:
        """The nodes `actor` may see (disco#items): all but those it could not read."""
        visible: list[NodeView] = []
        for record in await self.store.nodes(svc.jid):
            view = await self.find(svc, record.node)
            if view is not None and await self.may_read(svc, view, actor):
                visible.append(view)
        return visible

    # -- items ----------------------------------------------------------------------------------

    async def publish(
        self, svc: Service, actor: JID, node: str, item_id: str | None, payload: etree._Element | None,
        options: etree._Element | None = None,
    ) -> str:
        """Publish one item (creating the node first when the policy says so); returns its id."""
        view = await self.find(svc, node)
        if view is None:
            if not svc.policy.auto_create:
                raise errors.node_missing(node)
            base = apply_form(svc.policy.default, options, svc.policy.max_items) if options is not None else None
            await self.create(svc, actor, node, base=base)
            view = await self.load(svc, node)
        elif options is not None:
            unmet = unmet_preconditions(view.config, options, svc.policy.max_items)
            if unmet:
                raise errors.precondition_not_met(unmet)
        await self._require_publisher(svc, view, actor)
        config = view.config
        if payload is None and (config.persist_items or config.deliver_payloads):
            raise StanzaError.bad_request("This node needs a payload in each item",
                                          app_element=errors.app("payload-required"))
        item = PubSubItem(
            node, item_id or secrets.token_hex(8), str(actor.bare()),
            b"" if payload is None else etree.tostring(payload), time.time(),
        )
        limit = config.item_limit(svc.policy.max_items) if config.persist_items else 1
        await self.store.put_item(svc.jid, item, limit)
        if config.deliver_notifications:
            await self._notify(svc, node, config, "items", items_event(node, [item], payloads=config.deliver_payloads))
        return item.item_id

    async def retract(self, svc: Service, actor: JID, node: str, item_id: str, notify: bool | None) -> None:
        view = await self.load(svc, node)
        affiliation = self.affiliation(view, actor)
        found = await self.store.items(svc.jid, node, ids=[item_id])
        if not found:
            raise StanzaError.item_not_found(f"No item {item_id!r} on node {node!r}")
        own = found[0].publisher == str(actor.bare())
        if affiliation not in ("owner", "publisher") and not (own and affiliation in PUBLISHERS):
            raise StanzaError.forbidden("Only publishers may retract items")
        await self.store.delete_item(svc.jid, node, item_id)
        if view.config.notify_retract if notify is None else notify:
            retracted = ev("items", node=node)
            etree.SubElement(retracted, f"{{{NS_PUBSUB_EVENT}}}retract", id=item_id)
            await self._notify(svc, node, view.config, "retract", event_element(retracted))

    async def items(
        self, svc: Service, actor: JID, node: str, *, limit: int | None = None, ids: list[str] | None = None
    ) -> list[PubSubItem]:
        """Items `actor` may read, newest first."""
        view = await self.load(svc, node)
        await self.check_read(svc, view, actor)
        return await self.store.items(svc.jid, node, limit=limit, ids=ids)

    async def last_item(self, svc: Service, node: str) -> PubSubItem | None:
        found = await self.store.items(svc.jid, node, limit=1)
        return found[0] if found else None

    async def send_last(self, svc: Service, view: NodeView, to: str) -> None:
        """Send the node's last item to `to` (on subscription or when it becomes available)."""
        last = await self.last_item(svc, view.name)
        if last is None:
            return
        event = items_event(view.name, [last], payloads=view.config.deliver_payloads)
        await self.delivery.send(svc, to, event)

    # -- subscriptions --------------------------------------------------------------------------

    async def subscribe(
        self, svc: Service, actor: JID, node: str, jid: JID, options: etree._Element | None = None
    ) -> PubSubSubscription:
        if jid.bare() != actor.bare():
            raise errors.invalid_jid()
        view = await self.load(svc, node)
        affiliation = self.affiliation(view, actor)
        state = SUBSCRIBED
        if affiliation == "outcast":
            raise StanzaError.forbidden("You are banned from this node")
        if affiliation == "publish-only":
            raise StanzaError.forbidden("Publish-only entities may not subscribe")
        if view.config.access_model == "authorize" and affiliation not in READERS:
            state = PENDING
        else:
            await self.check_read(svc, view, actor, subscribing=True)
        existing = {s.jid: s for s in await self.store.subscriptions(svc.jid, node)}.get(str(jid))
        sub_options = SubscribeOptions() if existing is None else SubscribeOptions.from_json(existing.options)
        if options is not None:
            sub_options = apply_options(sub_options, options)
        if existing is not None and existing.state == SUBSCRIBED:
            state = SUBSCRIBED
        sub = PubSubSubscription(
            node, str(jid), existing.subid if existing else secrets.token_hex(8), state, sub_options.to_json()
        )
        await self.store.put_subscription(svc.jid, sub)
        if state == PENDING:
            await self._ask_owners(svc, view, sub)
        elif view.config.send_last_published_item != "never" and existing is None:
            await self.send_last(svc, view, str(jid))
        return sub

    async def unsubscribe(self, svc: Service, actor: JID, node: str, jid: JID) -> None:
        view = await self.load(svc, node)
        if jid.bare() != actor.bare() and self.affiliation(view, actor) != "owner":
            raise StanzaError.forbidden("You may only cancel your own subscriptions")
        if not await self.store.delete_subscription(svc.jid, node, str(jid)):
            raise StanzaError.unexpected_request("You are not subscribed to this node", type="cancel",
                                                 app_element=errors.app("not-subscribed"))

    async def options(self, svc: Service, actor: JID, node: str, jid: JID) -> SubscribeOptions:
        sub = await self._own_subscription(svc, actor, node, jid)
        return SubscribeOptions.from_json(sub.options)

    async def set_options(self, svc: Service, actor: JID, node: str, jid: JID, form: etree._Element) -> None:
        sub = await self._own_subscription(svc, actor, node, jid)
        options = apply_options(SubscribeOptions.from_json(sub.options), form)
        await self.store.put_subscription(svc.jid, dataclasses.replace(sub, options=options.to_json()))

    async def subscriptions_of(self, svc: Service, actor: JID, node: str | None) -> list[PubSubSubscription]:
        subs = await self.store.subscriptions_of(svc.jid, str(actor.bare()))
        return [s for s in subs if node is None or s.node == node]

    async def affiliations_of(self, svc: Service, actor: JID, node: str | None) -> dict[str, str]:
        bare = str(actor.bare())
        if svc.policy.owner == bare:
            found = {n.node: "owner" for n in await self.store.nodes(svc.jid)}
        else:
            found = await self.store.affiliations_of(svc.jid, bare)
        return {n: a for n, a in found.items() if node is None or n == node}

    # -- owner management -----------------------------------------------------------------------

    async def node_subscriptions(self, svc: Service, actor: JID, node: str) -> list[PubSubSubscription]:
        view = await self.load(svc, node)
        self._require_owner(view, actor)
        return await self.store.subscriptions(svc.jid, node)

    async def set_subscription(self, svc: Service, actor: JID, node: str, jid: JID, state: str) -> None:
        """Owner changes a subscription: approve a pending one ("subscribed") or end one ("none")."""
        view = await self.load(svc, node)
        self._require_owner(view, actor)
        current = {s.jid: s for s in await self.store.subscriptions(svc.jid, node)}.get(str(jid))
        if state == "none":
            if current is not None:
                await self.store.delete_subscription(svc.jid, node, str(jid))
        elif state == SUBSCRIBED:
            sub = current or PubSubSubscription(node, str(jid), secrets.token_hex(8), SUBSCRIBED)
            await self.store.put_subscription(svc.jid, dataclasses.replace(sub, state=SUBSCRIBED))
        else:
            raise StanzaError.bad_request(f"Unsupported subscription state {state!r}")
        if current is None or current.state != state:
            # XEP-0060 §8.8.4: tell the entity its subscription changed.
            await self.delivery.send(
                svc, str(jid), event_element(ev("subscription", node=node, jid=str(jid), subscription=state))
            )
            if state == SUBSCRIBED and view.config.send_last_published_item != "never":
                await self.send_last(svc, view, str(jid))

    async def node_affiliations(self, svc: Service, actor: JID, node: str) -> dict[str, str]:
        view = await self.load(svc, node)
        self._require_owner(view, actor)
        return view.affiliations

    async def set_affiliation(self, svc: Service, actor: JID, node: str, jid: JID, affiliation: str) -> None:
        view = await self.load(svc, node)
        self._require_owner(view, actor)
        if affiliation not in AFFILIATIONS:
            raise StanzaError.bad_request(f"Unknown affiliation {affiliation!r}")
        target = str(jid.bare())
        if target == svc.policy.owner:
            raise StanzaError.not_acceptable("The account owner always owns its PEP nodes")
        owners = [j for j, a in view.affiliations.items() if a == "owner"]
        if owners == [target] and affiliation != "owner":
            raise StanzaError.not_acceptable("A node needs at least one owner")
        await self.store.set_affiliation(svc.jid, node, target, affiliation)
        if affiliation == "outcast":
            for sub in await self.store.subscriptions(svc.jid, node):
                if JID.parse(sub.jid).bare() == jid.bare():
                    await self.store.delete_subscription(svc.jid, node, sub.jid)

    # -- access ---------------------------------------------------------------------------------

    def affiliation(self, view: NodeView, actor: JID) -> str:
        return view.affiliations.get(str(actor.bare()), "none")

    async def may_read(self, svc: Service, view: NodeView, actor: JID) -> bool:
        try:
            await self.check_read(svc, view, actor)
        except StanzaError:
            return False
        return True

    async def check_read(self, svc: Service, view: NodeView, actor: JID, *, subscribing: bool = False) -> None:
        """Raise the XEP-0060 error when `actor` may not retrieve items from (or subscribe to) the node."""
        affiliation = self.affiliation(view, actor)
        if affiliation == "outcast":
            raise StanzaError.forbidden("You are banned from this node")
        if affiliation in READERS:
            return
        if affiliation == "publish-only":
            raise StanzaError.forbidden("Publish-only entities may not retrieve items")
        model = view.config.access_model
        if model == "open":
            return
        if model == "whitelist":
            raise errors.closed_node()
        if model == "authorize":
            if not subscribing and not await self._is_subscribed(svc, view.name, actor):
                raise errors.not_subscribed()
            return
        owners = [j for j, a in view.affiliations.items() if a == "owner"]
        for owner in owners:
            relation = await self.contacts.relation(owner, str(actor.bare()))
            if relation is None or relation[0] not in PRESENCE_SHARING:
                continue
            if model == "presence":
                return
            if model == "roster" and set(relation[1]) & set(view.config.roster_groups_allowed):
                return
        if model == "presence":
            raise errors.presence_subscription_required()
        raise errors.not_in_roster_group()

    def _require_owner(self, view: NodeView, actor: JID) -> None:
        if self.affiliation(view, actor) != "owner":
            raise StanzaError.forbidden("Only the node's owners may do this")

    async def _require_publisher(self, svc: Service, view: NodeView, actor: JID) -> None:
        affiliation = self.affiliation(view, actor)
        if affiliation in PUBLISHERS:
            return
        if affiliation == "outcast":
            raise StanzaError.forbidden("You are banned from this node")
        model = view.config.publish_model
        if model == "open":
            return
        if model == "subscribers" and await self._is_subscribed(svc, view.name, actor):
            return
        raise StanzaError.forbidden("You may not publish to this node")

    async def _is_subscribed(self, svc: Service, node: str, actor: JID) -> bool:
        """`actor`'s account (bare JID or any of its resources) holds an approved subscription."""
        return any(
            sub.state == SUBSCRIBED and JID.parse(sub.jid).bare() == actor.bare()
            for sub in await self.store.subscriptions(svc.jid, node)
        )

    def _check_limit(self, svc: Service, config: NodeConfig) -> None:
        if config.max_items is not None and config.max_items > svc.policy.max_items:
            raise StanzaError.not_acceptable(
                f"pubsub#max_items may be at most {svc.policy.max_items}", app_element=errors.app("max-items-exceeded")
            )

    async def _own_subscription(self, svc: Service, actor: JID, node: str, jid: JID) -> PubSubSubscription:
        if jid.bare() != actor.bare():
            raise StanzaError.forbidden("You may only manage your own subscriptions")
        await self.load(svc, node)
        for sub in await self.store.subscriptions(svc.jid, node):
            if sub.jid == str(jid):
                return sub
        raise StanzaError.unexpected_request("You are not subscribed to this node", type="cancel",
                                             app_element=errors.app("not-subscribed"))

    async def _trim(self, svc: Service, node: str, limit: int) -> None:
        for item in (await self.store.items(svc.jid, node))[limit:]:
            await self.store.delete_item(svc.jid, node, item.item_id)

    async def _subscribers(self, svc: Service, node: str) -> tuple[PubSubSubscription, ...]:
        return tuple(
            s for s in await self.store.subscriptions(svc.jid, node)
            if s.state == SUBSCRIBED and SubscribeOptions.from_json(s.options).deliver
        )

    async def _notify(self, svc: Service, node: str, config: NodeConfig, kind: str, event: etree._Element) -> None:
        subscribers = await self._subscribers(svc, node)
        await self.delivery.notify(Notification(svc, node, config, kind, event, subscribers))

    async def _ask_owners(self, svc: Service, view: NodeView, sub: PubSubSubscription) -> None:
        """XEP-0060 §8.6: send each owner the subscription authorization form."""
        form = forms.build(
            AUTHORIZATION,
            [
                Field("pubsub#subid", "hidden", (sub.subid,)),
                Field("pubsub#node", "text-single", (view.name,), "Node ID"),
                Field("pubsub#subscriber_jid", "jid-single", (sub.jid,), "Subscriber Address"),
                Field("pubsub#allow", "boolean", ("0",), "Allow this JID to subscribe to this pubsub node?"),
            ],
            title="PubSub subscriber request",
        )
        for owner, affiliation in view.affiliations.items():
            if affiliation == "owner":
                await self.delivery.send(svc, owner, copy.deepcopy(form))
