"""Bookmarks (XEP-0402) and their #compat conversion to and from XEP-0048 (private XML and PEP)."""

from __future__ import annotations

from slixmpp.plugins.xep_0048.stanza import Bookmarks as LegacyBookmarks

from tests.integration.harness import Harness
from tests.integration.pubsub_helpers import form, payload, pubsub_client

NS = "urn:xmpp:bookmarks:1"
LEGACY = "storage:bookmarks"
PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"


async def bookmarks_client(harness: Harness, name: str) -> tuple[str, object]:
    jid, client = await pubsub_client(harness, name)
    for plugin in ("xep_0048", "xep_0049", "xep_0402"):
        client.register_plugin(plugin)
    return jid, client


async def test_account_advertises_compat(harness: Harness) -> None:
    jid, client = await bookmarks_client(harness, "alice")
    info = await client.plugin["xep_0030"].get_info(jid=jid)
    assert {NS, f"{NS}#compat", f"{NS}#compat-pep"} <= set(info["disco_info"]["features"])


async def test_xep_0402_bookmarks_appear_in_xep_0048_storage(harness: Harness) -> None:
    jid, client = await bookmarks_client(harness, "alice")
    options = form(client, PUBLISH_OPTIONS, pubsub__persist_items="true", pubsub__max_items="max",
                   pubsub__send_last_published_item="never", pubsub__access_model="whitelist")
    conference = (f"<conference xmlns='{NS}' name='The Coven' autojoin='true'><nick>alice</nick>"
                  "</conference>")
    await client.plugin["xep_0060"].publish(jid, NS, id="coven@chat.shakespeare.lit",
                                            payload=payload(conference), options=options)

    private = await client.plugin["xep_0048"].get_bookmarks(method="xep_0049")
    [room] = private["private"]["bookmarks"]["conferences"]
    assert (room["jid"], room["name"], room["autojoin"], room["nick"]) == (
        "coven@chat.shakespeare.lit", "The Coven", True, "alice")

    pep = await client.plugin["xep_0060"].get_items(jid, LEGACY)
    legacy = pep.xml.find(f".//{{{LEGACY}}}storage/{{{LEGACY}}}conference")
    assert legacy.get("jid") == "coven@chat.shakespeare.lit"

    await client.plugin["xep_0060"].retract(jid, NS, "coven@chat.shakespeare.lit", notify=True)
    private = await client.plugin["xep_0048"].get_bookmarks(method="xep_0049")
    assert list(private["private"]["bookmarks"]["conferences"]) == []


async def test_xep_0048_bookmarks_become_xep_0402_items(harness: Harness) -> None:
    jid, client = await bookmarks_client(harness, "alice")
    legacy = LegacyBookmarks()
    legacy.add_conference("orchard@chat.shakespeare.lit", "romeo", name="Orchard", autojoin=True)
    legacy.add_conference("balcony@chat.shakespeare.lit", "romeo", name="Balcony", autojoin=False)
    await client.plugin["xep_0048"].set_bookmarks(legacy, method="xep_0049")

    items = await client.plugin["xep_0060"].get_items(jid, NS)
    found = {i["id"]: i.xml.find(f"{{{NS}}}conference") for i in items["pubsub"]["items"]}
    assert set(found) == {"orchard@chat.shakespeare.lit", "balcony@chat.shakespeare.lit"}
    orchard = found["orchard@chat.shakespeare.lit"]
    assert (orchard.get("name"), orchard.get("autojoin"), orchard.findtext(f"{{{NS}}}nick")) == (
        "Orchard", "true", "romeo")
    config = await client.plugin["xep_0060"].get_node_config(jid, NS)
    assert config["pubsub_owner"]["configure"]["form"].get_fields()["pubsub#access_model"]["value"] == "whitelist"

    fewer = LegacyBookmarks()
    fewer.add_conference("orchard@chat.shakespeare.lit", "romeo", name="Orchard", autojoin=True)
    await client.plugin["xep_0048"].set_bookmarks(fewer, method="xep_0049")
    items = await client.plugin["xep_0060"].get_items(jid, NS)
    assert [i["id"] for i in items["pubsub"]["items"]] == ["orchard@chat.shakespeare.lit"]
