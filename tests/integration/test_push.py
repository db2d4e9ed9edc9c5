"""Push notifications (XEP-0357): a second real client acts as the app server and receives the
pubsub publish when a message for the user is stored offline."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from xml.etree import ElementTree as ET

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from appliance.modules.push import PushOptions
from appliance.xmpp.jid import JID
from tests.integration.harness import Client, Harness, make_config, start_harness
from tests.integration.stanzas import iq, send_message

PUSH = "urn:xmpp:push:0"
PUBSUB = "http://jabber.org/protocol/pubsub"


def app_server(client: Client) -> asyncio.Queue[ET.Element]:
    """Answer every pubsub publish with a result, like an app server, and keep what was published."""
    published: asyncio.Queue[ET.Element] = asyncio.Queue()

    def on_publish(stanza) -> None:  # type: ignore[no-untyped-def]
        published.put_nowait(stanza.xml)
        stanza.reply(clear=True).send()

    client.register_handler(Callback("push", MatchXPath(f"{{jabber:client}}iq/{{{PUBSUB}}}pubsub"), on_publish))
    return published


def summary(publish: ET.Element) -> dict[str, str | None]:
    note = publish.find(f"{{{PUBSUB}}}pubsub/{{{PUBSUB}}}publish/{{{PUBSUB}}}item/{{{PUSH}}}notification")
    return {f.get("var"): f.findtext("{jabber:x:data}value") for f in note.iter("{jabber:x:data}field")}


async def offline(harness: Harness, client: Client, jid: str) -> None:
    """Disconnect and wait until the server has no session left for the account."""
    client.disconnect()
    for _ in range(100):
        if not harness.server.sessions.count_for(JID.parse(jid)):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{jid} is still online")


async def setup(harness: Harness) -> tuple[str, Client, Client, Client, asyncio.Queue[ET.Element]]:
    alice, bob = await harness.user("alice"), await harness.user("bob")
    service_jid = await harness.user("pushsvc")
    service = await harness.client(service_jid, resource="app")
    published = app_server(service)
    phone = await harness.client(alice, resource="phone")
    options = ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>"
               "http://jabber.org/protocol/pubsub#publish-options</value></field>"
               "<field var='secret'><value>eruio234vzxc2kla-91</value></field></x>")
    node = "yxs32uqsflafdk3iuqo"
    await iq(phone, "set", f"<enable xmlns='{PUSH}' jid='{service_jid}/app' node='{node}'>{options}</enable>")
    sender = await harness.client(bob)
    return alice, service, phone, sender, published


async def test_offline_message_is_pushed(harness: Harness) -> None:
    info = await harness.client(await harness.user("carol"))
    features = (await info.plugin["xep_0030"].get_info(f"carol@{harness.domain}"))["disco_info"]["features"]
    assert PUSH in features
    alice, _service, phone, bob, published = await setup(harness)
    await offline(harness, phone, alice)
    send_message(bob, alice, "wake up")
    publish = await asyncio.wait_for(published.get(), 10)
    assert publish.get("from") == alice
    node = publish.find(f"{{{PUBSUB}}}pubsub/{{{PUBSUB}}}publish")
    assert node.get("node") == "yxs32uqsflafdk3iuqo"
    fields = summary(publish)
    assert fields["FORM_TYPE"] == "urn:xmpp:push:summary"
    assert fields["message-count"] == "1" and fields["last-message-sender"] == f"bob@{harness.domain}"
    assert "last-message-body" not in fields  # bodies stay on the server unless configured
    secret = publish.find(f"{{{PUBSUB}}}pubsub/{{{PUBSUB}}}publish-options/{{jabber:x:data}}x")
    assert secret is not None and "eruio234vzxc2kla-91" in ET.tostring(secret, encoding="unicode")

    send_message(bob, alice, "second")
    assert summary(await asyncio.wait_for(published.get(), 10))["message-count"] == "2"


async def test_body_when_configured_and_disable(tmp_path: Path) -> None:
    host = make_config(tmp_path).hosts[0]
    push = replace(host.modules.of(PushOptions), include_body=True)
    harness = await start_harness(tmp_path, hosts=(replace(host, modules=host.modules.with_options(push)),))
    try:
        alice, service, phone, bob, published = await setup(harness)
        await iq(phone, "set", f"<disable xmlns='{PUSH}' jid='{service.boundjid.bare}/app' node='other'/>")
        await offline(harness, phone, alice)
        send_message(bob, alice, "with body")
        assert summary(await asyncio.wait_for(published.get(), 10))["last-message-body"] == "with body"

        phone = await harness.client(alice, resource="phone", presence=False)
        await iq(phone, "set", f"<disable xmlns='{PUSH}' jid='{service.boundjid.bare}/app'/>")
        await offline(harness, phone, alice)
        send_message(bob, alice, "no push now")
        send_message(bob, f"pushsvc@{harness.domain}/app", "marker")
        assert (await service.next_message())["body"] == "marker"
        assert published.empty()
    finally:
        await harness.close()
