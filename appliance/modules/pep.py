"""Personal Eventing Protocol (XEP-0163): every account is a pubsub service on its bare JID.

Nodes are created by publishing (with publish-options as their configuration, XEP-0060 §7.1.5),
default to the presence access model, and notify the owner's resources and contacts whose entity
capabilities include NODE+notify. Newly available resources get the last item of each node they
want. Other modules (bookmarks, avatars) publish and listen through `PersonalEventing`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from lxml import etree

from appliance.core import events
from appliance.core.api import Int, IqRequest, Module, ModuleContext, Scope, Xep, option
from appliance.core.events import AccountEvent
from appliance.modules.caps import Capabilities
from appliance.modules.pubsub.config import PUBLISH_OPTIONS, NodeConfig
from appliance.modules.pubsub.delivery import RosterContacts, SubscriberDelivery, message
from appliance.modules.pubsub.engine import Engine, NodeView, Notification, Policy, Service, items_event
from appliance.modules.pubsub.protocol import FEATURES, PUBSUB, PUBSUB_OWNER, PubSubProtocol
from appliance.storage.api import PubSubItem, PubSubStore, RosterStore
from appliance.xmpp import forms
from appliance.xmpp.forms import Field
from appliance.xmpp.jid import JID
from appliance.xmpp.ns import NS_PUBSUB

PEP_FEATURES = (
    *FEATURES,
    *(f"{NS_PUBSUB}#{name}" for name in (
        "auto-create", "auto-subscribe", "filtered-notifications", "presence-notifications",
    )),
)
INTERESTED = frozenset({"from", "both"})  # the contact receives the owner's presence

PepListener = Callable[[JID, Notification], Awaitable[None]]


class PersonalEventing:
    """What other modules may do with PEP: publish and read as the owner, and hear about changes."""

    def __init__(self, module: Pep) -> None:
        self._module = module
        self._listeners: dict[str, list[PepListener]] = {}

    def service(self, owner: JID) -> Service:
        return self._module.service(owner)

    async def publish(
        self, owner: JID, node: str, item_id: str | None, payload: etree._Element, options: dict[str, str] | None = None
    ) -> str:
        """Publish as the owner; `options` are publish-options (field var → value)."""
        form = None
        if options:
            form = forms.build(PUBLISH_OPTIONS, [Field(k, "text-single", (v,)) for k, v in options.items()],
                               type_="submit")
        return await self._module.engine.publish(self.service(owner), owner.bare(), node, item_id, payload, form)

    async def retract(self, owner: JID, node: str, item_id: str) -> None:
        await self._module.engine.retract(self.service(owner), owner.bare(), node, item_id, None)

    async def items(self, owner: JID, node: str, limit: int | None = None) -> list[PubSubItem]:
        """Items of the owner's node (none when it does not exist), newest first."""
        svc = self.service(owner)
        if await self._module.engine.find(svc, node) is None:
            return []
        return await self._module.engine.items(svc, owner.bare(), node, limit=limit)

    def listen(self, node: str, listener: PepListener) -> Callable[[], None]:
        """Call `listener(owner, notification)` after each change on any account's `node`."""
        self._listeners.setdefault(node, []).append(listener)
        return lambda: self._listeners.get(node, []).remove(listener)

    async def changed(self, owner: JID, notification: Notification) -> None:
        for listener in list(self._listeners.get(notification.node, ())):
            await listener(owner, notification)


class PepDelivery(SubscriberDelivery):
    """Notifications to explicit subscribers plus PEP's implicit ones (XEP-0163 §4)."""

    def __init__(self, ctx: ModuleContext, module: Pep) -> None:
        super().__init__(ctx)
        self.module = module

    async def notify(self, notification: Notification) -> None:
        sent: set[str] = set()
        await self.to_subscribers(notification, sent)
        owner = JID.parse(notification.service.jid)
        view = await self.module.engine.find(notification.service, notification.node)
        if view is None:  # deleted: only the owner's resources may still hear about it
            view = NodeView(notification.node, notification.config, {str(owner): "owner"})
        mtype = notification.config.notification_type
        for target in await self.module.interested(owner, view):
            if str(target) not in sent and str(target.bare()) not in sent:
                await self.ctx.route(message(notification.service.jid, str(target), notification.event, mtype))
        await self.module.api.changed(owner, notification)


@dataclass(frozen=True, slots=True)
class PepOptions:
    """Personal eventing (XEP-0163): each account's own pubsub nodes (avatars, OMEMO keys, bookmarks ...)."""

    max_nodes: int = option(200, Int(1, 100_000), "Most PEP nodes per account.")
    max_items: int = option(256, Int(1, 100_000),
        "Most items a PEP node may keep (what pubsub#max_items \"max\" means).")
    default_max_items: int = option(1, Int(1, 100_000), "Items a new PEP node keeps unless configured.")


class Pep(Module):
    """PEP nodes on each account of this host, on the shared pubsub engine."""

    name = "pep"
    options = PepOptions
    implements = (Xep(163, "1.2.2"), Xep(223, "1.1.1"))
    depends = ("disco", "roster", "caps")

    ctx: ModuleContext

    def setup(self, ctx: ModuleContext[PepOptions]) -> None:
        self.ctx = ctx
        opts = ctx.options
        default = NodeConfig(
            access_model="presence", max_items=opts.default_max_items, send_last_published_item="on_sub_and_presence",
        )
        self.policy_template = Policy(
            max_items=opts.max_items, default=default, auto_create=True, max_nodes=opts.max_nodes
        )
        self.caps = ctx.require(Capabilities)
        self.engine = Engine(ctx.store(PubSubStore), RosterContacts(ctx), PepDelivery(ctx, self))
        self.protocol = PubSubProtocol(self.engine, self.resolve, lambda request: request.is_self)
        self.api = PersonalEventing(self)
        ctx.provide(PersonalEventing, self.api)
        for tag, handler in ((PUBSUB, self.protocol.user), (PUBSUB_OWNER, self.protocol.owner)):
            ctx.iq("get", tag, handler, scope=Scope.ACCOUNT, feature=None)
            ctx.iq("set", tag, handler, scope=Scope.ACCOUNT, feature=None)
        for var in (NS_PUBSUB, *PEP_FEATURES):
            ctx.feature(var)
            ctx.feature(var, scope=Scope.ACCOUNT)
        ctx.identity("pubsub", "pep", scope=Scope.ACCOUNT)  # XEP-0163 §6.1: the account is a PEP service
        self.caps.listeners.append(self.on_caps)
        self.caps.remote_listeners.append(self.on_remote_caps)
        ctx.hook(events.ACCOUNT_DELETED, self.on_account_deleted)

    async def stop(self) -> None:
        if self.on_caps in self.caps.listeners:
            self.caps.listeners.remove(self.on_caps)
        if self.on_remote_caps in self.caps.remote_listeners:
            self.caps.remote_listeners.remove(self.on_remote_caps)

    def service(self, owner: JID) -> Service:
        bare = str(owner.bare())
        return Service(bare, Policy(
            max_items=self.policy_template.max_items, default=self.policy_template.default, owner=bare,
            auto_create=True, max_nodes=self.policy_template.max_nodes,
        ))

    def resolve(self, request: IqRequest) -> Service:
        return self.service(request.to_jid)

    async def interested(self, owner: JID, view: NodeView) -> list[JID]:
        """Full JIDs of available resources that want `view`'s notifications and may read it: the
        owner's own, and those of contacts that receive the owner's presence."""
        found = [s.jid for s in self.ctx.sessions.available(owner) if self.caps.wants(s.jid, view.name)]
        if owner.local is None:
            return found
        svc = self.service(owner)
        for item in await self.ctx.store(RosterStore).items(owner.domain, owner.local):
            if item.subscription not in INTERESTED:
                continue
            contact = JID.parse(item.contact)
            if self.ctx.is_local(contact.domain):
                wanting = [s.jid for s in self.ctx.sessions.available(contact) if self.caps.wants(s.jid, view.name)]
            else:
                wanting = self.caps.remote_wanting(contact, view.name)
            if wanting and await self.engine.may_read(svc, view, contact):
                found.extend(wanting)
        return found

    async def on_caps(self, session: Any) -> None:
        """A resource's caps became known: send it the last item of every node it wants (XEP-0163 §4.3.2)."""
        user: JID = session.jid
        owners = [user.bare()]
        if user.local is not None:
            for item in await self.ctx.store(RosterStore).items(user.domain, user.local):
                if item.subscription in ("to", "both"):
                    contact = JID.parse(item.contact)
                    if contact.local is not None and contact.domain == self.ctx.host:
                        owners.append(contact)
        for owner in owners:
            await self._send_last(owner, user)

    async def on_remote_caps(self, owner: JID, user: JID) -> None:
        """A remote contact's resource told `owner` its caps: the last items of `owner`'s nodes it wants."""
        if owner.local is None:
            return
        item = await self.ctx.store(RosterStore).item(owner.domain, owner.local, str(user.bare()))
        if item is not None and item.subscription in INTERESTED:
            await self._send_last(owner, user)

    async def _send_last(self, owner: JID, user: JID) -> None:
        svc = self.service(owner)
        for record in await self.ctx.store(PubSubStore).nodes(svc.jid):
            if not self.caps.wants(user, record.node):
                continue
            view = await self.engine.find(svc, record.node)
            if view is None or view.config.send_last_published_item != "on_sub_and_presence":
                continue
            if owner != user.bare() and not await self.engine.may_read(svc, view, user):
                continue
            last = await self.engine.last_item(svc, record.node)
            if last is not None:
                event = items_event(record.node, [last], payloads=view.config.deliver_payloads)
                await self.ctx.route(message(svc.jid, str(user), event, view.config.notification_type))

    async def on_account_deleted(self, event: AccountEvent) -> None:
        await self.ctx.store(PubSubStore).delete_service(str(event.jid.bare()))


__all__ = ["Pep", "PersonalEventing"]
