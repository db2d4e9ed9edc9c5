"""Ping (XEP-0199), version (XEP-0092), entity time (XEP-0202) and last activity (XEP-0012) end to end."""

from __future__ import annotations

import asyncio
import platform
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slixmpp.exceptions import IqError

from appliance import __version__
from appliance.catalog import default_config
from appliance.modules.version import VersionOptions
from appliance.storage.api import RosterItem
from appliance.xmpp.jid import JID
from appliance.xmpp.ns import NS_TIME
from tests.integration.harness import Client, Harness, start_harness


async def connect(harness: Harness, jid: str, *, resource: str = "test", presence: bool = False) -> Client:
    """Log `jid` in with the version, time and last activity plugins (no roster needed here)."""
    client = await harness.client(jid, resource=resource, roster=False, presence=presence)
    for plugin in ("xep_0092", "xep_0202", "xep_0012"):
        client.register_plugin(plugin)
    return client


async def login(harness: Harness, name: str) -> tuple[str, Client]:
    """Create an account and connect it."""
    jid = await harness.user(name)
    return jid, await connect(harness, jid)


async def error_condition(request: Awaitable[object]) -> str:
    with pytest.raises(IqError) as failure:
        await request
    return str(failure.value.iq["error"]["condition"])


async def eventually(check: Callable[[], Awaitable[bool]], attempts: int = 200) -> None:
    """Wait for server-side work that follows a client action asynchronously (hooks run as tasks)."""
    for _ in range(attempts):
        if await check():
            return
        await asyncio.sleep(0.025)
    raise AssertionError("condition never became true")


# -- ping ---------------------------------------------------------------------------------------


async def test_server_answers_ping(harness: Harness) -> None:
    _jid, client = await login(harness, "alice")
    reply = await client.plugin["xep_0199"].send_ping(harness.domain, timeout=5)
    assert reply["type"] == "result"
    assert reply["from"] == harness.domain
    assert len(reply.xml) == 0  # an empty result


async def test_ping_to_an_offline_resource_is_unavailable(harness: Harness) -> None:
    bob = await harness.user("bob")
    _jid, client = await login(harness, "alice")
    ping = client.plugin["xep_0199"].send_ping(f"{bob}/gone", timeout=5)
    assert await error_condition(ping) == "service-unavailable"


# -- version ------------------------------------------------------------------------------------


async def test_version_hides_the_os_by_default(harness: Harness) -> None:
    _jid, client = await login(harness, "alice")
    reply = await client.plugin["xep_0092"].get_version(harness.domain)
    software = reply["software_version"]
    assert (software["name"], software["version"], software["os"]) == ("Parlour", __version__, "")


async def test_version_shows_the_os_when_configured(tmp_path: Path) -> None:
    host = default_config(tmp_path).hosts[0]
    modules = host.modules.with_options(VersionOptions(show_os=True))
    harness = await start_harness(tmp_path, hosts=(replace(host, modules=modules),))
    try:
        _jid, client = await login(harness, "alice")
        reply = await client.plugin["xep_0092"].get_version(harness.domain)
        assert reply["software_version"]["os"].startswith(platform.system())
    finally:
        await harness.close()


# -- time ---------------------------------------------------------------------------------------


async def test_entity_time_is_utc(harness: Harness) -> None:
    _jid, client = await login(harness, "alice")
    reply = await client.plugin["xep_0202"].get_entity_time(harness.domain)
    payload = reply.xml.find(f"{{{NS_TIME}}}time")
    assert payload is not None
    assert payload.findtext(f"{{{NS_TIME}}}tzo") == "+00:00"
    utc = payload.findtext(f"{{{NS_TIME}}}utc") or ""
    assert utc.endswith("Z")
    stamp = datetime.fromisoformat(utc.replace("Z", "+00:00"))
    # The server's clock is this machine's clock: the answer is "now", give or take a generous margin.
    assert abs(stamp - datetime.now(UTC)) < timedelta(minutes=5)


# -- last activity ------------------------------------------------------------------------------


async def test_server_uptime(harness: Harness) -> None:
    before = time.time()
    _jid, client = await login(harness, "alice")
    reply = await client.plugin["xep_0012"].get_last_activity(harness.domain)
    seconds = reply["last_activity"]["seconds"]
    # The server started before this test's first client, and not long before this test began.
    assert 0 <= seconds <= int(time.time() - before) + 60


async def test_last_activity_needs_a_presence_subscription(harness: Harness) -> None:
    alice, _alice_client = await login(harness, "alice")
    _bob, bob_client = await login(harness, "bob")
    last = bob_client.plugin["xep_0012"]
    assert await error_condition(last.get_last_activity(alice)) == "forbidden"
    # Bob subscribed to Alice is not enough: Alice must share her presence with Bob.
    await harness.server.stores.roster.put(harness.domain, "bob", RosterItem(alice, subscription="to"))
    assert await error_condition(last.get_last_activity(alice)) == "forbidden"


async def test_last_activity_of_online_offline_and_never_seen_contacts(harness: Harness) -> None:
    alice = await harness.user("alice")
    bob, bob_client = await login(harness, "bob")
    await harness.server.stores.roster.put(harness.domain, "alice", RosterItem(bob, subscription="both"))
    last = bob_client.plugin["xep_0012"]

    # Alice has an account but never logged out: nothing is known.
    assert await error_condition(last.get_last_activity(alice)) == "item-not-found"

    # While she is available the answer is 0 seconds.
    alice_client = await connect(harness, alice, presence=True)
    alice_jid = JID.parse(alice)

    async def available() -> bool:
        return bool(harness.server.sessions.available(alice_jid))

    await eventually(available)
    assert (await last.get_last_activity(alice))["last_activity"]["seconds"] == 0

    # She leaves with a status text and disconnects: the logout is recorded with that text.
    alice_client.send_presence(ptype="unavailable", pstatus="Gone fishing")
    alice_client.disconnect()

    async def recorded() -> bool:
        return await harness.server.stores.kv.get(harness.domain, "alice", "last", "logout") is not None

    await eventually(recorded)
    reply = await last.get_last_activity(alice)
    assert reply["last_activity"]["status"] == "Gone fishing"
    assert 0 <= reply["last_activity"]["seconds"] < 60


async def test_logout_is_recorded_only_when_the_last_resource_leaves(harness: Harness) -> None:
    alice = await harness.user("alice")
    phone = await connect(harness, alice, resource="phone")
    laptop = await connect(harness, alice, resource="laptop")
    alice_jid = JID.parse(alice)

    phone.disconnect()

    async def phone_gone() -> bool:
        return harness.server.sessions.count_for(alice_jid) == 1

    await eventually(phone_gone)
    # The closed-session hook was queued when the phone's session left the directory, long before this
    # query arrives over the socket. The owner may ask about herself; the laptop is still bound (though
    # not available), so no logout was recorded.
    assert await error_condition(laptop.plugin["xep_0012"].get_last_activity(alice)) == "item-not-found"


async def test_ping_to_a_bare_jid_is_answered_by_the_server(harness: Harness) -> None:
    alice = await harness.user("pinger")
    bob = await harness.user("pinged")
    a = await harness.client(alice)
    await a.plugin["xep_0199"].ping(jid=alice)  # own account
    await a.plugin["xep_0199"].ping(jid=bob)  # another account, offline: the server answers for it
