"""Shared steps for the publish-subscribe, PEP, bookmark and avatar tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from tests.integration.harness import Client, Harness

NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors"


def form(client: Client, form_type: str, **fields: Any) -> Any:
    """A submitted data form: field names use "#" for "__" (pubsub__access_model → pubsub#access_model)."""
    submitted = client.plugin["xep_0004"].make_form(ftype="submit")
    submitted.add_field(var="FORM_TYPE", ftype="hidden", value=form_type)
    for name, value in fields.items():
        submitted.add_field(var=name.replace("__", "#"), value=value)
    return submitted


def payload(xml: str) -> ET.Element:
    return ET.fromstring(xml)


def watch_events(client: Client) -> None:
    """Queue every pubsub notification and data-form message in `client.messages` (slixmpp's own
    "message" event only covers messages with a body)."""
    for name, path in (("pubsub events", f"{{jabber:client}}message/{{{NS_PUBSUB_EVENT}}}event"),
                       ("form messages", "{jabber:client}message/{jabber:x:data}x")):
        client.register_handler(Callback(name, MatchXPath(path), client.messages.put_nowait))


async def pubsub_client(harness: Harness, name: str, **kwargs: Any) -> tuple[str, Client]:
    jid = await harness.user(name)
    client = await harness.client(jid, **kwargs)
    client.register_plugin("xep_0004")
    client.register_plugin("xep_0060")
    watch_events(client)
    return jid, client


async def failure(request: Awaitable[object]) -> tuple[str, str | None]:
    """The error condition of a failing IQ and the name of its pubsub#errors element, if any."""
    with pytest.raises(IqError) as caught:
        await request
    error = caught.value.iq.xml.find("{jabber:client}error")
    assert error is not None
    app = next((c.tag.split("}")[1] for c in error if c.tag.startswith(f"{{{NS_PUBSUB_ERRORS}}}")), None)
    return str(caught.value.iq["error"]["condition"]), app


async def next_event(client: Client, wanted: Callable[[ET.Element], bool] = lambda _e: True,
                     timeout: float = 5.0) -> ET.Element:
    """The <event/> of the next pubsub notification that `wanted` accepts (other messages are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            message = await client.messages.get()
            event = message.xml.find(f"{{{NS_PUBSUB_EVENT}}}event")
            if event is not None and wanted(event):
                return event


async def no_event(client: Client, wanted: Callable[[ET.Element], bool] = lambda _e: True,
                   after: Callable[[], Awaitable[object]] | None = None) -> None:
    """Assert no matching notification arrives: a ping round trip (answered after any notification
    already routed to this client) marks the end of what could have come."""
    if after is not None:
        await after()
    await client.plugin["xep_0199"].ping(client.boundjid.domain, timeout=5)
    while not client.messages.empty():
        message = client.messages.get_nowait()
        event = message.xml.find(f"{{{NS_PUBSUB_EVENT}}}event")
        assert event is None or not wanted(event), ET.tostring(message.xml)


def items_of(event: ET.Element, node: str) -> list[ET.Element]:
    items = event.find(f"{{{NS_PUBSUB_EVENT}}}items")
    if items is None or items.get("node") != node:
        return []
    return list(items)


def on_node(node: str) -> Callable[[ET.Element], bool]:
    return lambda event: any(child.get("node") == node for child in event)


async def befriend(harness: Harness, *pairs: tuple[str, str]) -> None:
    """Mutual presence subscriptions (as if both had approved) straight in the roster store."""
    from appliance.storage.api import RosterItem
    from appliance.xmpp.jid import JID

    assert harness.server.stores is not None
    for a, b in pairs:
        for user, contact in ((a, b), (b, a)):
            jid = JID.parse(user)
            item = RosterItem(contact, subscription="both")
            await harness.server.stores.roster.put(jid.domain, jid.local or "", item)


async def announce_caps(client: Client, interests: tuple[str, ...] = ()) -> None:
    """Entity capabilities (XEP-0115) with NODE+notify for `interests` in the client's initial presence
    (sent now); events are queued in `client.messages`."""
    for plugin in ("xep_0004", "xep_0060", "xep_0115", "xep_0163"):
        client.register_plugin(plugin)
    watch_events(client)
    client.plugin["xep_0030"].add_feature("urn:example:client")
    for node in interests:
        client.plugin["xep_0030"].add_feature(f"{node}+notify")
    await client.plugin["xep_0115"].update_caps(broadcast=False)
    client.send_presence()


async def caps_client(harness: Harness, jid: str, interests: tuple[str, ...] = (), resource: str = "phone") -> Client:
    """A client announcing entity capabilities (XEP-0115) with NODE+notify for `interests`, after the
    server has learned (and verified) them."""
    from appliance.modules.caps import Capabilities
    from appliance.xmpp.jid import JID

    client = await harness.client(jid, presence=False, resource=resource)
    await announce_caps(client, interests)
    caps = harness.server.hosts[harness.domain].services[Capabilities]
    full = JID.parse(f"{jid}/{resource}")
    async with asyncio.timeout(5):
        while not caps.features(full):  # the server asks the client for its features, then caches them
            await asyncio.sleep(0.02)
    return client
