"""vcard-temp (XEP-0054) and private XML storage (XEP-0049) against a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from slixmpp import Iq
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0054.stanza import VCardTemp
from slixmpp.xmlstream import ElementBase

from appliance.catalog import default_config
from appliance.modules.private import PrivateOptions
from appliance.modules.vcard import VcardOptions
from appliance.xmpp.ns import NS_PRIVATE, NS_VCARD
from tests.integration.harness import Client, Harness, start_harness

SMALL_LIMIT = 300


class Prefs(ElementBase):
    """A client's settings document, as an application would keep in private storage."""

    name = "prefs"
    namespace = "urn:example:prefs"
    plugin_attrib = "prefs"
    interfaces = {"theme"}
    sub_interfaces = interfaces


@pytest.fixture
async def small(tmp_path: Path) -> AsyncIterator[Harness]:
    """A server whose vCard and private storage limits are a few hundred bytes."""
    host = default_config(tmp_path).hosts[0]
    modules = host.modules.with_options(VcardOptions(max_size=SMALL_LIMIT), PrivateOptions(max_size=SMALL_LIMIT))
    harness = await start_harness(tmp_path, hosts=(replace(host, modules=modules),))
    try:
        yield harness
    finally:
        await harness.close()


async def login(harness: Harness, name: str) -> tuple[str, Client]:
    jid = await harness.user(name)
    client = await harness.client(jid, roster=False, presence=False)
    client.register_plugin("xep_0054")
    client.register_plugin("xep_0049")
    client.plugin["xep_0049"].register(Prefs)
    return jid, client


async def error_condition(request: Awaitable[object]) -> str:
    with pytest.raises(IqError) as failure:
        await request
    return str(failure.value.iq["error"]["condition"])


def vcard(full_name: str, nickname: str = "") -> VCardTemp:
    card = VCardTemp()
    card["FN"] = full_name
    if nickname:
        card.xml.append(ET.fromstring(f"<NICKNAME xmlns='{NS_VCARD}'>{nickname}</NICKNAME>"))
    return card


def raw_iq(client: Client, type_: str, payload: str, to: str | None = None) -> Iq:
    """An IQ carrying literal XML, for requests the slixmpp plugins cannot express."""
    iq = client.make_iq(ito=to, itype=type_)
    iq.append(ET.fromstring(payload))
    return iq


# -- vCard --------------------------------------------------------------------------------------


async def test_vcard_publish_and_read_by_owner_and_others(harness: Harness) -> None:
    alice, alice_client = await login(harness, "alice")
    _bob, bob_client = await login(harness, "bob")
    await alice_client.plugin["xep_0054"].publish_vcard(vcard("Alice Liddell", "alice"))

    own = await alice_client.plugin["xep_0054"].get_vcard(alice)
    assert own["vcard_temp"]["FN"] == "Alice Liddell"
    assert own.xml.findtext(f"{{{NS_VCARD}}}vCard/{{{NS_VCARD}}}NICKNAME") == "alice"

    seen_by_bob = await bob_client.plugin["xep_0054"].get_vcard(alice)
    assert seen_by_bob["from"] == alice
    assert seen_by_bob["vcard_temp"]["FN"] == "Alice Liddell"


async def test_vcard_is_empty_until_published_and_after_clearing(harness: Harness) -> None:
    alice, alice_client = await login(harness, "alice")
    _bob, bob_client = await login(harness, "bob")
    reply = await bob_client.plugin["xep_0054"].get_vcard(alice)
    card = reply.xml.find(f"{{{NS_VCARD}}}vCard")
    assert card is not None and len(card) == 0

    await alice_client.plugin["xep_0054"].publish_vcard(vcard("Alice"))
    await alice_client.plugin["xep_0054"].publish_vcard(VCardTemp())  # an empty vCard clears it
    reply = await bob_client.plugin["xep_0054"].get_vcard(alice)
    card = reply.xml.find(f"{{{NS_VCARD}}}vCard")
    assert card is not None and len(card) == 0


async def test_vcard_of_somebody_else_cannot_be_set(harness: Harness) -> None:
    alice, alice_client = await login(harness, "alice")
    _bob, bob_client = await login(harness, "bob")
    await alice_client.plugin["xep_0054"].publish_vcard(vcard("Alice"))
    forged = bob_client.plugin["xep_0054"].publish_vcard(vcard("Not Alice"), jid=alice)
    assert await error_condition(forged) == "forbidden"
    reply = await bob_client.plugin["xep_0054"].get_vcard(alice)
    assert reply["vcard_temp"]["FN"] == "Alice"


async def test_vcard_size_limit(small: Harness) -> None:
    alice, client = await login(small, "alice")
    too_big = client.plugin["xep_0054"].publish_vcard(vcard("A" * SMALL_LIMIT))
    assert await error_condition(too_big) == "not-acceptable"
    await client.plugin["xep_0054"].publish_vcard(vcard("A" * (SMALL_LIMIT // 2)))
    reply = await client.plugin["xep_0054"].get_vcard(alice)
    assert reply["vcard_temp"]["FN"] == "A" * (SMALL_LIMIT // 2)


async def test_server_vcard_is_empty(harness: Harness) -> None:
    _alice, client = await login(harness, "alice")
    reply = await client.plugin["xep_0054"].get_vcard(harness.domain)
    assert reply["from"] == harness.domain
    card = reply.xml.find(f"{{{NS_VCARD}}}vCard")
    assert card is not None and len(card) == 0


# -- private XML storage ------------------------------------------------------------------------


async def test_private_store_and_retrieve_own_data(harness: Harness) -> None:
    _alice, alice_client = await login(harness, "alice")
    _bob, bob_client = await login(harness, "bob")
    storage = alice_client.plugin["xep_0049"]

    empty = await storage.retrieve("prefs")
    assert empty["private"]["prefs"]["theme"] == ""  # nothing stored yet: the empty element comes back

    prefs = Prefs()
    prefs["theme"] = "dark"
    await storage.store(prefs)
    assert (await storage.retrieve("prefs"))["private"]["prefs"]["theme"] == "dark"

    prefs["theme"] = "light"
    await storage.store(prefs)
    assert (await storage.retrieve("prefs"))["private"]["prefs"]["theme"] == "light"

    # Each account has its own storage.
    assert (await bob_client.plugin["xep_0049"].retrieve("prefs"))["private"]["prefs"]["theme"] == ""


async def test_private_storage_of_others_is_forbidden(harness: Harness) -> None:
    alice, _alice_client = await login(harness, "alice")
    _bob, bob_client = await login(harness, "bob")
    query = f"<query xmlns='{NS_PRIVATE}'><prefs xmlns='urn:example:prefs'/></query>"
    assert await error_condition(raw_iq(bob_client, "get", query, to=alice).send()) == "forbidden"
    assert await error_condition(raw_iq(bob_client, "set", query, to=alice).send()) == "forbidden"


@pytest.mark.parametrize(
    ("content", "get_condition", "set_condition"),
    [
        # XEP-0049 §2.3: no child in its own namespace MUST be Not Acceptable; a get MUST NOT ask for
        # several namespaces (a set MAY carry several elements, see the conformance suite).
        ("", "not-acceptable", "not-acceptable"),
        ("<a xmlns='urn:example:a'/><b xmlns='urn:example:b'/>", "bad-request", None),
        ("<plain xmlns=''/>", "not-acceptable", "not-acceptable"),
        ("<query xmlns='jabber:iq:roster'/>", "not-acceptable", "not-acceptable"),
    ],
    ids=["no-child", "two-children", "no-namespace", "reserved-namespace"],
)
async def test_private_storage_refuses_malformed_requests(
    harness: Harness, content: str, get_condition: str, set_condition: str | None
) -> None:
    _alice, client = await login(harness, "alice")
    query = f"<query xmlns='{NS_PRIVATE}'>{content}</query>"
    assert await error_condition(raw_iq(client, "get", query).send()) == get_condition
    if set_condition is not None:
        assert await error_condition(raw_iq(client, "set", query).send()) == set_condition


async def test_private_size_limit(small: Harness) -> None:
    _alice, client = await login(small, "alice")
    storage = client.plugin["xep_0049"]
    prefs = Prefs()
    prefs["theme"] = "x" * SMALL_LIMIT
    assert await error_condition(storage.store(prefs)) == "not-acceptable"
    assert (await storage.retrieve("prefs"))["private"]["prefs"]["theme"] == ""
