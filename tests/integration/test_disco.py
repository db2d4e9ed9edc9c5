"""Service discovery (XEP-0030/0128/0157) against a real server with slixmpp clients."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from slixmpp.exceptions import IqError

from appliance.catalog import default_config
from appliance.modules.contact_addresses import ContactAddressesOptions
from appliance.modules.disco import DiscoItems
from appliance.modules.outage_status import OutageStatusOptions
from appliance.storage.api import RosterItem
from appliance.xmpp.ns import NS_DATA, NS_DISCO_INFO, NS_PING, NS_SERVERINFO, NS_VCARD
from tests.integration.harness import Client, Harness, start_harness

FORM = f"{{{NS_DISCO_INFO}}}query/{{{NS_DATA}}}x"


async def login(harness: Harness, name: str) -> tuple[str, Client]:
    """Create an account and connect it (roster and presence are not needed for disco)."""
    jid = await harness.user(name)
    return jid, await harness.client(jid, roster=False, presence=False)


async def error_condition(request: object) -> str:
    """Await an IQ that must fail and return its error condition."""
    with pytest.raises(IqError) as failure:
        await request  # type: ignore[misc]
    return str(failure.value.iq["error"]["condition"])


async def share_presence(harness: Harness, owner: str, contact: str, subscription: str) -> None:
    """Put `contact` on `owner`'s roster with `subscription`, as the roster module would."""
    item = RosterItem(contact, subscription=subscription)
    await harness.server.stores.roster.put(harness.domain, owner, item)


async def test_server_info_has_identity_features_and_no_form_by_default(harness: Harness) -> None:
    _jid, client = await login(harness, "alice")
    info = await client.plugin["xep_0030"].get_info(harness.domain, cached=False)
    identities = {(c, t, n) for c, t, _lang, n in info["disco_info"]["identities"]}
    assert ("server", "im", "Parlour") in identities
    features = set(info["disco_info"]["features"])
    assert {NS_DISCO_INFO, "http://jabber.org/protocol/disco#items", NS_PING, NS_VCARD} <= features
    assert {"jabber:iq:version", "urn:xmpp:time", "jabber:iq:last", "jabber:iq:private"} <= features
    assert info.xml.find(FORM) is None  # no contact address configured, so no serverinfo form


async def test_server_node_and_unsupported_requests(harness: Harness) -> None:
    _jid, client = await login(harness, "alice")
    disco = client.plugin["xep_0030"]
    info = disco.get_info(harness.domain, node="nope", cached=False)
    assert await error_condition(info) == "item-not-found"
    assert await error_condition(disco.get_items(harness.domain, node="nope")) == "item-not-found"


async def test_server_items_come_from_the_published_service(harness: Harness) -> None:
    _jid, client = await login(harness, "alice")
    disco = client.plugin["xep_0030"]
    built_in = set((await disco.get_items(harness.domain))["disco_items"]["items"])  # services of modules

    service = harness.server.hosts[harness.domain].services[DiscoItems]
    service.add(f"example.{harness.domain}", name="Example service")
    items = (await disco.get_items(harness.domain))["disco_items"]["items"]
    assert set(items) - built_in == {(f"example.{harness.domain}", None, "Example service")}

    assert service.remove(f"example.{harness.domain}")
    assert set((await disco.get_items(harness.domain))["disco_items"]["items"]) == built_in


async def test_contact_addresses_form(tmp_path: Path) -> None:
    host = default_config(tmp_path).hosts[0]
    addresses = ContactAddressesOptions(
        abuse=("mailto:abuse@example.org",), admin=("xmpp:admin@example.org", "mailto:xmpp@example.org")
    )
    harness = await start_harness(
        tmp_path, hosts=(replace(host, modules=host.modules.with_options(addresses)),)
    )
    try:
        _jid, client = await login(harness, "alice")
        info = await client.plugin["xep_0030"].get_info(harness.domain, cached=False)
        form = info.xml.find(FORM)
        assert form is not None and form.get("type") == "result"
        fields = {
            f.get("var"): [v.text for v in f.findall(f"{{{NS_DATA}}}value")]
            for f in form.findall(f"{{{NS_DATA}}}field")
        }
        assert fields == {
            "FORM_TYPE": [NS_SERVERINFO],
            "abuse-addresses": ["mailto:abuse@example.org"],
            "admin-addresses": ["xmpp:admin@example.org", "mailto:xmpp@example.org"],
        }
    finally:
        await harness.close()


async def test_account_info_for_the_owner(harness: Harness) -> None:
    jid, client = await login(harness, "alice")
    disco = client.plugin["xep_0030"]
    info = await disco.get_info(jid, cached=False)
    identities = {(c, t) for c, t, _lang, _n in info["disco_info"]["identities"]}
    assert identities == {("account", "registered"), ("pubsub", "pep")}  # XEP-0163 §6.1
    assert NS_DISCO_INFO in info["disco_info"]["features"]
    assert list((await disco.get_items(jid))["disco_items"]["items"]) == []
    assert await error_condition(disco.get_info(jid, node="x", cached=False)) == "item-not-found"


async def test_account_info_needs_a_presence_subscription(harness: Harness) -> None:
    alice, _alice_client = await login(harness, "alice")
    bob, bob_client = await login(harness, "bob")
    disco = bob_client.plugin["xep_0030"]

    # A stranger learns nothing, not even that the account exists.
    assert await error_condition(disco.get_info(alice, cached=False)) == "service-unavailable"
    # XEP-0030 §8 rule 2: disco#items answers an empty result rather than an error.
    assert not (await disco.get_items(alice))["disco_items"]["items"]

    # Alice subscribed to Bob ("to") does not share her presence with him.
    await share_presence(harness, "alice", bob, "to")
    assert await error_condition(disco.get_info(alice, cached=False)) == "service-unavailable"

    # Once Bob receives Alice's presence ("from"), he may discover her account.
    await share_presence(harness, "alice", bob, "from")
    info = await disco.get_info(alice, cached=False)
    assert ("account", "registered") in {(c, t) for c, t, _l, _n in info["disco_info"]["identities"]}


async def test_unknown_account_is_unavailable(harness: Harness) -> None:
    _jid, client = await login(harness, "alice")
    info = client.plugin["xep_0030"].get_info(f"nobody@{harness.domain}", cached=False)
    assert await error_condition(info) == "service-unavailable"


async def test_outage_status_addresses(tmp_path: Path) -> None:
    """XEP-0455: the configured status document addresses, read with slixmpp's own plugin; a server
    without any publishes no urn:xmpp:sos:0 form at all."""
    host = default_config(tmp_path).hosts[0]
    urls = ("https://status.example.org/xmpp.json", "http://backup.example.net/status.json")
    harness = await start_harness(
        tmp_path, hosts=(replace(host, modules=host.modules.with_options(OutageStatusOptions(addresses=urls))),)
    )
    try:
        _jid, client = await login(harness, "alice")
        client.register_plugin("xep_0455")
        assert await client.plugin["xep_0455"].get_external_status_addresses() == list(urls)
    finally:
        await harness.close()


async def test_no_outage_status_form_by_default(harness: Harness) -> None:
    _jid, client = await login(harness, "alice")
    client.register_plugin("xep_0455")
    assert await client.plugin["xep_0455"].get_external_status_addresses() == []
