"""The publish-subscribe service on pubsub.<domain> (XEP-0060): nodes anyone may discover and use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lxml import etree

from appliance.core.api import DOMAIN, Choice, Int, IqRequest, Module, ModuleContext, Xep, option
from appliance.core.events import StanzaEvent
from appliance.modules.disco import DiscoItems
from appliance.modules.pubsub.config import AUTHORIZATION, META_DATA, NodeConfig
from appliance.modules.pubsub.delivery import RosterContacts, SubscriberDelivery
from appliance.modules.pubsub.engine import Engine, Policy, Service
from appliance.modules.pubsub.protocol import FEATURES, PUBSUB, PUBSUB_OWNER, PubSubProtocol
from appliance.storage.api import PubSubStore
from appliance.xmpp import forms
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.forms import Field
from appliance.xmpp.jid import JID, JIDError
from appliance.xmpp.ns import NS_CLIENT, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_PUBSUB
from appliance.xmpp.stanza import iq_result

IQ = f"{{{NS_CLIENT}}}iq"
MESSAGE = f"{{{NS_CLIENT}}}message"
INFO = f"{{{NS_DISCO_INFO}}}query"
ITEMS = f"{{{NS_DISCO_ITEMS}}}query"
PING = f"{{{NS_PING}}}ping"
NAME = "Publish-Subscribe"


PubSubCreate = Literal["everyone", "local", "admins"]
AccessModel = Literal["open", "presence", "roster", "whitelist", "authorize"]


@dataclass(frozen=True, slots=True)
class PubSubOptions:
    """Publish-subscribe service (XEP-0060) at <subdomain>.<host>."""

    subdomain: str = option("pubsub", DOMAIN, "First label of the publish-subscribe service's domain (pubsub.<host>).")
    create_nodes: PubSubCreate = option("local", Choice.of(PubSubCreate),
        "Who may create nodes: anybody, accounts of this host, or the server's admins.")
    max_nodes: int = option(10_000, Int(1, 10_000_000), "Most nodes on the service.")
    max_items: int = option(1000, Int(1, 1_000_000),
        "Most items a node may keep (what pubsub#max_items \"max\" means).")
    default_max_items: int = option(10, Int(1, 1_000_000), "Items a new node keeps unless configured.")
    default_access_model: AccessModel = option("open", Choice.of(AccessModel),
        "Access model of a new node unless configured.")

    def service_domain(self, host: str) -> str:
        return f"{self.subdomain}.{host}"


class PubSubService(Module):
    """Serves pubsub.<host> in this process with the shared pubsub engine."""

    name = "pubsub"
    options = PubSubOptions
    implements = (Xep(60, "1.26.0", status="partial", note="leaf nodes only: no collections"),)
    depends = ("disco", "roster")

    ctx: ModuleContext
    domain: str

    def setup(self, ctx: ModuleContext[PubSubOptions]) -> None:
        self.ctx = ctx
        opts = ctx.options
        self.domain = opts.service_domain(ctx.host)
        self.create_policy: str = opts.create_nodes
        default = NodeConfig(max_items=opts.default_max_items, access_model=opts.default_access_model)
        policy = Policy(max_items=opts.max_items, default=default, max_nodes=opts.max_nodes)
        self.service = Service(self.domain, policy)
        self.engine = Engine(ctx.store(PubSubStore), RosterContacts(ctx), SubscriberDelivery(ctx))
        self.protocol = PubSubProtocol(self.engine, lambda _request: self.service, self.may_create)
        ctx.serve_domain(self.domain, self.on_stanza)
        self.items = ctx.optional(DiscoItems)
        if self.items is not None:
            self.items.add(self.domain, name=NAME)

    async def stop(self) -> None:
        if self.items is not None:
            self.items.remove(self.domain)

    def may_create(self, request: IqRequest) -> bool:
        """[modules.pubsub] create_nodes: everyone, local users or admins."""
        sender = request.from_jid
        if self.create_policy == "admins":
            return self.ctx.is_admin(sender)
        if self.create_policy == "local":
            return sender.local is not None and self.ctx.is_local(sender.domain)
        return True

    # -- stanzas to pubsub.<host> ---------------------------------------------------------------

    async def on_stanza(self, event: StanzaEvent) -> None:
        stanza = event.stanza
        if event.to_jid.local is not None or event.to_jid.resource is not None:
            if stanza.tag != MESSAGE or stanza.get("type") != "error":
                raise StanzaError.service_unavailable()
            return
        if stanza.tag == IQ:
            await self._iq(event)
        elif stanza.tag == MESSAGE and stanza.get("type") != "error":
            await self._authorization(event)

    async def _iq(self, event: StanzaEvent) -> None:
        stanza = event.stanza
        if stanza.get("type") not in ("get", "set"):
            return
        if len(stanza) != 1:
            raise StanzaError.bad_request("An IQ get or set carries exactly one payload element")
        payload = stanza[0]
        request = IqRequest(stanza, payload, event.from_jid, event.to_jid, event.session)
        key = (request.type, payload.tag)
        if key in (("get", PUBSUB), ("set", PUBSUB)):
            result = await self.protocol.user(request)
        elif key in (("get", PUBSUB_OWNER), ("set", PUBSUB_OWNER)):
            result = await self.protocol.owner(request)
        elif key == ("get", INFO):
            result = await self._disco_info(request)
        elif key == ("get", ITEMS):
            result = await self._disco_items(request)
        elif key == ("get", PING):
            result = None
        else:
            raise StanzaError.service_unavailable()
        reply = iq_result(stanza, result, from_=self.domain)
        reply.set("to", str(event.from_jid))
        await self.ctx.route(reply)

    async def _disco_info(self, request: IqRequest) -> etree._Element:
        query = etree.Element(INFO, nsmap={None: NS_DISCO_INFO})
        node = request.payload.get("node")
        if node:
            query.set("node", node)
            view = await self.engine.find(self.service, node)
            if view is None or not await self.engine.may_read(self.service, view, request.from_jid):
                raise StanzaError.item_not_found(f"No node {node!r}")
            etree.SubElement(query, f"{{{NS_DISCO_INFO}}}identity", category="pubsub", type="leaf")
            etree.SubElement(query, f"{{{NS_DISCO_INFO}}}feature", var=NS_PUBSUB)
            owners = [j for j, a in view.affiliations.items() if a == "owner"]
            query.append(forms.build(META_DATA, [
                Field("pubsub#title", "text-single", (view.config.title,)),
                Field("pubsub#description", "text-single", (view.config.description,)),
                Field("pubsub#type", "text-single", (view.config.type,)),
                Field("pubsub#access_model", "list-single", (view.config.access_model,)),
                Field("pubsub#publish_model", "list-single", (view.config.publish_model,)),
                Field("pubsub#owner", "jid-multi", tuple(owners)),
            ], type_="result"))
            return query
        etree.SubElement(query, f"{{{NS_DISCO_INFO}}}identity", category="pubsub", type="service", name=NAME)
        for var in sorted((NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_PUBSUB, *FEATURES)):
            etree.SubElement(query, f"{{{NS_DISCO_INFO}}}feature", var=var)
        return query

    async def _disco_items(self, request: IqRequest) -> etree._Element:
        query = etree.Element(ITEMS, nsmap={None: NS_DISCO_ITEMS})
        node = request.payload.get("node")
        if node:
            query.set("node", node)
            for item in await self.engine.items(self.service, request.from_jid, node):
                etree.SubElement(query, f"{{{NS_DISCO_ITEMS}}}item", jid=self.domain, name=item.item_id)
            return query
        for view in await self.engine.nodes(self.service, request.from_jid):
            entry = etree.SubElement(query, f"{{{NS_DISCO_ITEMS}}}item", jid=self.domain, node=view.name)
            if view.config.title:
                entry.set("name", view.config.title)
        return query

    async def _authorization(self, event: StanzaEvent) -> None:
        """An owner's answer to a subscription authorization request (XEP-0060 §8.6)."""
        form = forms.find(event.stanza, AUTHORIZATION)
        if form is None or form.get("type") != "submit":
            return
        values = forms.values(form)
        node = (values.get("pubsub#node") or ("",))[0]
        try:
            subscriber = JID.parse((values.get("pubsub#subscriber_jid") or ("",))[0])
            allow = forms.parse_bool((values.get("pubsub#allow") or ("0",))[0])
        except (JIDError, ValueError):
            raise StanzaError.bad_request("Invalid subscription authorization form") from None
        await self.engine.set_subscription(
            self.service, event.from_jid, node, subscriber, "subscribed" if allow else "none"
        )


__all__ = ["PubSubService"]
