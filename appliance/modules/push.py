"""Push notifications (XEP-0357): wake a mobile client's app server when a message waits for the account.

A client registers an app server (a pubsub service JID and node, plus publish-options such as its
secret). When a message is stored offline, or held for a session that stream management hibernated
(events.PUSH_NEEDED), the server publishes a summary to each registered node.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from lxml import etree

from appliance.core import events
from appliance.core.api import Bool, Duration, Int, IqRequest, Module, ModuleContext, Scope, Xep, option
from appliance.core.events import PushEvent
from appliance.modules._util import parse_stored, require_owner
from appliance.storage.api import KeyValueStore, OfflineStore
from appliance.xmpp import forms
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.forms import Field
from appliance.xmpp.jid import JID, JIDError
from appliance.xmpp.ns import NS_CLIENT, NS_PUBSUB, NS_PUSH

NS_PUSH_SUMMARY = "urn:xmpp:push:summary"
NS_PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"
STORE = "push"


def _key(service: str, node: str) -> str:
    return json.dumps([service, node])


def notification(user: JID, service: str, node: str, summary: list[Field], options: bytes) -> etree._Element:
    """The pubsub publish IQ of one notification (XEP-0357 §7)."""
    iq = etree.Element(f"{{{NS_CLIENT}}}iq", nsmap={None: NS_CLIENT})
    iq.set("type", "set")
    iq.set("from", str(user))
    iq.set("to", service)
    pubsub = etree.SubElement(iq, f"{{{NS_PUBSUB}}}pubsub", nsmap={None: NS_PUBSUB})
    publish = etree.SubElement(pubsub, f"{{{NS_PUBSUB}}}publish", node=node)
    item = etree.SubElement(publish, f"{{{NS_PUBSUB}}}item")
    note = etree.SubElement(item, f"{{{NS_PUSH}}}notification", nsmap={None: NS_PUSH})
    note.append(forms.build(NS_PUSH_SUMMARY, summary, type_="submit"))
    if options:
        holder = etree.SubElement(pubsub, f"{{{NS_PUBSUB}}}publish-options")
        holder.append(parse_stored(options))
    return iq


@dataclass(frozen=True, slots=True)
class PushOptions:
    """Push notifications (XEP-0357) to the app servers of mobile clients."""

    include_body: bool = option(False, Bool(),
        "Send the text of the last message to the app server (leaves the server: off by default).")
    include_sender: bool = option(True, Bool(), "Send the address of the last message's sender.")
    max_registrations: int = option(10, Int(1, 1000), "Most push registrations per account.")
    timeout: float = option(30.0, Duration(1, 600), "Time an app server has to answer a notification.")


class Push(Module):
    """Registrations per account in the key-value store; notifications sent in the background."""

    name = "push"
    options = PushOptions
    depends = ("offline",)
    implements = (Xep(357, "0.4.1"),)

    def setup(self, ctx: ModuleContext[PushOptions]) -> None:
        self.ctx = ctx
        self.options = ctx.options
        ctx.iq("set", f"{{{NS_PUSH}}}enable", self.on_enable, scope=Scope.ACCOUNT)
        ctx.iq("set", f"{{{NS_PUSH}}}disable", self.on_disable, scope=Scope.ACCOUNT, feature=None)
        ctx.hook(events.PUSH_NEEDED, self.on_push_needed)

    async def on_enable(self, request: IqRequest) -> None:
        require_owner(request, "push registrations")
        payload = request.payload
        service, node = _service(payload), payload.get("node", "")
        if not node:
            raise StanzaError.bad_request("<enable/> needs a 'node'")
        options = b""
        form = forms.find(payload, NS_PUBLISH_OPTIONS)
        if form is not None:
            options = etree.tostring(form)
        user = request.to_jid
        kv = self.ctx.store(KeyValueStore)
        existing = await kv.all(user.domain, user.local or "", STORE)
        if _key(service, node) not in existing and len(existing) >= self.options.max_registrations:
            raise StanzaError.resource_constraint("Too many push registrations for this account")
        await kv.put(user.domain, user.local or "", STORE, _key(service, node), options)

    async def on_disable(self, request: IqRequest) -> None:
        require_owner(request, "push registrations")
        payload = request.payload
        service, node = _service(payload), payload.get("node")
        user = request.to_jid
        kv = self.ctx.store(KeyValueStore)
        for key in await kv.all(user.domain, user.local or "", STORE):
            found_service, found_node = json.loads(key)
            if found_service == service and node in (None, found_node):
                await kv.delete(user.domain, user.local or "", STORE, key)

    def on_push_needed(self, event: PushEvent) -> None:
        self.ctx.spawn(self.notify(event.user.bare(), event.stanza), "notify")

    async def notify(self, user: JID, stanza: etree._Element) -> None:
        """Publish a summary to every app server the account registered."""
        kv = self.ctx.store(KeyValueStore)
        registrations = await kv.all(user.domain, user.local or "", STORE)
        if not registrations:
            return
        summary = [Field("message-count", "text-single", (str(await self.ctx.store(OfflineStore).count(
            user.domain, user.local or "")),))]
        if self.options.include_sender and stanza.get("from"):
            summary.append(Field("last-message-sender", "jid-single", (str(JID.parse(stanza.get("from")).bare()),)))
        body = stanza.findtext(f"{{{NS_CLIENT}}}body")
        if self.options.include_body and body:
            summary.append(Field("last-message-body", "text-single", (body,)))
        for key, options in registrations.items():
            service, node = json.loads(key)
            iq = notification(user, service, node, summary, options)
            try:
                reply = await self.ctx.send_iq(iq, timeout=self.options.timeout)
            except TimeoutError:
                self.ctx.log.warning("push to %s for %s: no answer", service, user)
                continue
            if reply.get("type") == "error":
                found = reply.find(f"{{{NS_CLIENT}}}error")
                error = StanzaError.from_element(found) if found is not None else StanzaError("undefined-condition")
                self.ctx.log.warning("push to %s for %s failed: %s", service, user, error.condition)
                if error.type in ("cancel", "auth"):  # XEP-0357 §8: the registration is dead
                    await kv.delete(user.domain, user.local or "", STORE, key)


def _service(payload: etree._Element) -> str:
    try:
        return str(JID.parse(payload.get("jid", "")))
    except JIDError:
        raise StanzaError.bad_request("'jid' must be the JID of the app server") from None


__all__ = ["Push", "notification"]
