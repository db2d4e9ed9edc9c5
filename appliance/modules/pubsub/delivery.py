"""Collaborators the engine needs from the server: roster lookups and sending messages."""

from __future__ import annotations

import copy
import secrets

from lxml import etree

from appliance.core.api import ModuleContext
from appliance.modules.pubsub.engine import Notification, Service
from appliance.storage.api import RosterStore
from appliance.xmpp.jid import JID, JIDError
from appliance.xmpp.ns import NS_CLIENT

MESSAGE = f"{{{NS_CLIENT}}}message"


def message(from_: str, to: str, payload: etree._Element, mtype: str = "headline") -> etree._Element:
    """A message from a pubsub service carrying `payload` (an <event/> or a form)."""
    stanza = etree.Element(MESSAGE, nsmap={None: NS_CLIENT})
    stanza.set("from", from_)
    stanza.set("to", to)
    stanza.set("id", secrets.token_hex(6))
    if mtype != "normal":
        stanza.set("type", mtype)
    stanza.append(copy.deepcopy(payload))
    return stanza


class RosterContacts:
    """`engine.Contacts` over the rosters of local accounts."""

    def __init__(self, ctx: ModuleContext) -> None:
        self.ctx = ctx

    async def relation(self, owner: str, entity: str) -> tuple[str, tuple[str, ...]] | None:
        try:
            owner_jid = JID.parse(owner)
        except JIDError:
            return None
        if owner_jid.local is None or not self.ctx.is_local(owner_jid.domain):
            return None
        item = await self.ctx.store(RosterStore).item(owner_jid.domain, owner_jid.local, entity)
        return None if item is None else (item.subscription, item.groups)


class SubscriberDelivery:
    """`engine.Delivery` that sends notifications to each explicit subscriber."""

    def __init__(self, ctx: ModuleContext) -> None:
        self.ctx = ctx

    async def notify(self, notification: Notification) -> None:
        await self.to_subscribers(notification, set())

    async def to_subscribers(self, notification: Notification, skip: set[str]) -> None:
        """Notify explicit subscribers except the addresses in `skip` (which then holds all that got it)."""
        mtype = notification.config.notification_type
        for sub in notification.subscribers:
            if sub.jid in skip:
                continue
            skip.add(sub.jid)
            await self.ctx.route(message(notification.service.jid, sub.jid, notification.event, mtype))

    async def send(self, service: Service, to: str, payload: etree._Element) -> None:
        await self.ctx.route(message(service.jid, to, payload))
