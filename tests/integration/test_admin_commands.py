"""Ad-hoc commands (XEP-0050) and service administration (XEP-0133) driven by slixmpp's xep_0050 and
xep_0133 plugins over real sockets, the way Gajim and Psi run them: discover, execute, fill, complete."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import slixmpp
from slixmpp.exceptions import IqError

from appliance.modules.admin_commands import NS_ADMIN
from appliance.xmpp.jid import JID
from tests.integration.harness import PASSWORD, Client, Harness, start_harness
from tests.integration.harness import make_config as base_config

NEW_PASSWORD = "another fine passphrase"


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    config = base_config(tmp_path)
    domain = config.hosts[0].name
    h = await start_harness(tmp_path, server=replace(config.server, admins=(f"admin@{domain}",)))
    try:
        yield h
    finally:
        await h.close()


async def commander(harness: Harness, name: str, **kwargs: Any) -> Client:
    """A logged-in client with the ad-hoc and service administration plugins."""
    jid = JID.make(name, harness.domain)
    assert harness.server.accounts is not None
    if not await harness.server.accounts.exists(jid):
        await harness.user(name)
    client = await harness.client(str(jid), **kwargs)
    for plugin in ("xep_0004", "xep_0050", "xep_0133"):
        client.register_plugin(plugin)
    return client


async def run_admin(client: Client, name: str, values: dict[str, Any] | None = None) -> slixmpp.Iq:
    """Run the XEP-0133 command `name` through slixmpp's command workflow: execute, then fill the form
    it shows with `values` (keeping the offered defaults) and complete; the final answer or error."""
    done: asyncio.Future[slixmpp.Iq] = asyncio.get_running_loop().create_future()

    def finish(iq: slixmpp.Iq, _session: dict[str, Any]) -> None:
        if not done.done():
            done.set_result(iq)

    def fill(iq: slixmpp.Iq, session: dict[str, Any]) -> None:
        if iq["command"]["status"] == "completed":
            finish(iq, session)
            return
        shown = iq["command"]["form"]
        answer = client.plugin["xep_0004"].make_form(ftype="submit")
        for var, field in shown.get_fields().items():
            value = (values or {}).get(var, field["value"])
            answer.add_field(var=var, ftype=field["type"], value=value)
        session["payload"] = answer
        session["next"] = finish
        client.plugin["xep_0050"].complete_command(session)

    getattr(client.plugin["xep_0133"], name.replace("-", "_"))(session={"next": fill, "error": finish})
    return await asyncio.wait_for(done, 10)


async def offline(harness: Harness, jid: str) -> None:
    """Wait until the server has no session of `jid` left (fails after 5 s)."""
    for _ in range(50):
        if not harness.server.sessions.resources(JID.parse(jid)):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{jid} still has sessions")


def note(iq: slixmpp.Iq) -> tuple[str, str]:
    found = iq["command"]["notes"]
    assert found, f"no note in {iq}"
    return found[0]


def result(iq: slixmpp.Iq) -> dict[str, Any]:
    assert iq["type"] == "result" and iq["command"]["status"] == "completed", str(iq)
    fields = iq["command"]["form"].get_fields().items()
    return {var: field["value"] for var, field in fields if var != "FORM_TYPE"}


async def test_an_admin_adds_a_user_who_then_logs_in(harness: Harness) -> None:
    admin = await commander(harness, "admin")
    items = await admin.plugin["xep_0133"].get_commands()
    nodes = {item[1] for item in items["disco_items"]["items"]}
    assert {f"{NS_ADMIN}#{n}" for n in ("add-user", "delete-user", "announce", "user-stats")} <= nodes
    info = await admin.plugin["xep_0030"].get_info(jid=harness.domain, node=f"{NS_ADMIN}#add-user")
    assert ("automation", "command-node", None, "Add a user") in info["disco_info"]["identities"]

    carol = f"carol@{harness.domain}"
    answer = await run_admin(admin, "add-user",
                             {"accountjid": carol, "password": PASSWORD, "password-verify": PASSWORD})
    assert note(answer) == ("info", f"{carol} was created.")
    client = await harness.client(carol)
    assert client.boundjid.bare == carol

    again = await run_admin(admin, "add-user", {"accountjid": carol, "password": PASSWORD, "password-verify": PASSWORD})
    assert note(again)[0] == "error" and "already exists" in note(again)[1]
    differ = await run_admin(admin, "add-user", {"accountjid": f"dave@{harness.domain}", "password": PASSWORD,
                                                 "password-verify": NEW_PASSWORD})
    assert note(differ) == ("error", "The two passwords differ.")
    assert not await harness.server.accounts.exists(JID.parse(f"dave@{harness.domain}"))


async def test_a_non_admin_sees_no_commands_and_is_refused(harness: Harness) -> None:
    mallory = await commander(harness, "mallory")
    items = await mallory.plugin["xep_0133"].get_commands()
    assert not items["disco_items"]["items"]
    answer = await run_admin(mallory, "add-user")
    assert answer["type"] == "error" and answer["error"]["condition"] == "forbidden"
    with pytest.raises(IqError) as refused:
        await mallory.plugin["xep_0050"].send_command(
            harness.domain, f"{NS_ADMIN}#get-registered-users-num", timeout=5)
    assert refused.value.iq["error"]["condition"] == "forbidden"
    with pytest.raises(IqError) as hidden:
        await mallory.plugin["xep_0030"].get_info(jid=harness.domain, node=f"{NS_ADMIN}#add-user")
    assert hidden.value.iq["error"]["condition"] == "forbidden"


async def test_announce_reaches_every_online_user(harness: Harness) -> None:
    admin = await commander(harness, "admin")
    alice_jid = await harness.user("alice")
    receivers = [await harness.client(alice_jid, resource="phone"), await harness.client(alice_jid, resource="pc"),
                 await harness.client(await harness.user("bob"))]
    answer = await run_admin(admin, "announce", {"announcement": "Maintenance at noon.\nBack at one."})
    assert note(answer) == ("info", "The announcement was sent to 4 online sessions.")
    for client in [*receivers, admin]:
        message = await client.next_message()
        assert message["from"] == harness.domain
        assert message["body"] == "Maintenance at noon.\nBack at one."


async def test_statistics_match_the_server(harness: Harness) -> None:
    admin = await commander(harness, "admin")
    alice_jid = await harness.user("alice")
    await harness.user("bob")  # registered, never online
    alice = await harness.client(alice_jid, resource="phone")
    await harness.client(alice_jid, resource="pc")
    await alice.get_roster()
    alice.update_roster(f"bob@{harness.domain}", name="Bob")
    await asyncio.sleep(0.2)

    assert result(await run_admin(admin, "get-registered-users-num")) == {
        "registeredusersnum": "3"}
    assert result(await run_admin(admin, "get-online-users-num"))["onlineusersnum"] == "2"
    listed = result(await run_admin(admin, "get-online-users-list", {"max_items": "none"}))["onlineuserjids"]
    assert sorted(str(j) for j in listed) == [f"admin@{harness.domain}", alice_jid]
    registered = result(await run_admin(admin, "get-registered-users-list", {"max_items": "none"}))
    assert [str(j) for j in registered["registereduserjids"]] == [f"admin@{harness.domain}", alice_jid,
                                                                   f"bob@{harness.domain}"]
    first = result(await run_admin(admin, "get-registered-users-list", {"max_items": "25"}))
    assert len(first["registereduserjids"]) == 3
    stats = result(await run_admin(admin, "user-stats", {"accountjid": alice_jid}))
    assert stats["rostersize"] == "1"
    assert sorted(stats["onlineresources"]) == [f"{alice_jid}/pc", f"{alice_jid}/phone"]


async def test_change_password_and_delete_user(harness: Harness) -> None:
    admin = await commander(harness, "admin")
    erin_jid = await harness.user("erin")
    await harness.client(erin_jid)
    changed = await run_admin(admin, "change-user-password", {"accountjid": erin_jid, "password": NEW_PASSWORD})
    assert note(changed) == ("info", f"The password of {erin_jid} was changed.")
    assert await harness.server.accounts.verify_plain(JID.parse(erin_jid), NEW_PASSWORD)

    deleted = await run_admin(admin, "delete-user", {"accountjids": [erin_jid]})
    assert note(deleted) == ("info", f"Deleted: {erin_jid}.")
    assert not await harness.server.accounts.exists(JID.parse(erin_jid))
    await offline(harness, erin_jid)
    missing = await run_admin(admin, "delete-user", {"accountjids": [erin_jid]})
    assert note(missing) == ("error", f"{erin_jid} does not exist.")
    elsewhere = await run_admin(admin, "delete-user", {"accountjids": ["someone@elsewhere.example"]})
    assert elsewhere["type"] == "error" and elsewhere["error"]["condition"] == "bad-request"


async def test_sessions_actions_and_errors(harness: Harness) -> None:
    """execute opens a session on the requester's full JID; prev at the first stage, a wrong or foreign
    session id, an unknown node and an unknown action are refused with XEP-0050's conditions; cancel ends."""
    admin = await commander(harness, "admin")
    other = await commander(harness, "admin", resource="other")
    commands = admin.plugin["xep_0050"]
    node = f"{NS_ADMIN}#change-user-password"
    started = await commands.send_command(harness.domain, node, timeout=5)
    assert started["command"]["status"] == "executing"
    assert set(started["command"]["actions"]) == {"complete"}
    sessionid = started["command"]["sessionid"]

    async def refused(client: Client, **kwargs: Any) -> tuple[str, str | None]:
        with pytest.raises(IqError) as caught:
            await client.plugin["xep_0050"].send_command(harness.domain, kwargs.pop("node", node), timeout=5, **kwargs)
        error = caught.value.iq.xml.find("{jabber:client}error")
        app = [child.tag.split("}")[1] for child in error if "commands" in child.tag]
        return caught.value.iq["error"]["condition"], app[0] if app else None

    assert await refused(admin, action="prev", sessionid=sessionid) == ("bad-request", "bad-action")
    assert await refused(admin, action="next", sessionid=sessionid) == ("bad-request", "bad-action")
    assert await refused(admin, action="complete", sessionid="nonsense") == ("bad-request", "bad-sessionid")
    assert await refused(other, action="complete", sessionid=sessionid) == ("bad-request", "bad-sessionid")
    assert await refused(admin, action="complete") == ("bad-request", "bad-sessionid")
    assert await refused(admin, node=f"{NS_ADMIN}#no-such-thing") == ("item-not-found", None)
    assert await refused(admin, action="jump", sessionid=sessionid) == ("bad-request", "malformed-action")

    canceled = await commands.send_command(harness.domain, node, action="cancel", sessionid=sessionid, timeout=5)
    assert canceled["command"]["status"] == "canceled"
    assert await refused(admin, action="complete", sessionid=sessionid) == ("bad-request", "bad-sessionid")


async def login_failure(harness: Harness, jid: str) -> str:
    """Try to log in as `jid`; the SASL failure condition the server answered."""
    client = Client(f"{jid}/test", PASSWORD, harness.ca_file)
    harness.clients.append(client)
    failure: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    client.add_event_handler("failed_auth", lambda stanza: failure.done() or failure.set_result(
        next((child.tag.split("}")[1] for child in stanza.xml if child.tag.split("}")[1] != "text"), "")))
    client.connect(host="127.0.0.1", port=harness.port)
    try:
        return await asyncio.wait_for(failure, 10)
    finally:
        client.disconnect()


async def quiet(client: Client, harness: Harness) -> bool:
    """Whether nothing reached `client` once a ping round trip has passed after its login."""
    await client.plugin["xep_0199"].ping(harness.domain, timeout=5)
    await asyncio.sleep(0.2)
    return client.messages.empty()


async def test_a_disabled_user_cannot_log_in_until_re_enabled(harness: Harness) -> None:
    admin = await commander(harness, "admin")
    frank_jid = await harness.user("frank")
    await harness.client(frank_jid)
    disabled = await run_admin(admin, "disable-user", {"accountjids": [frank_jid]})
    assert note(disabled) == ("info", f"Disabled: {frank_jid}.")
    await offline(harness, frank_jid)
    assert await login_failure(harness, frank_jid) == "account-disabled"
    assert result(await run_admin(admin, "get-disabled-users-num")) == {"disabledusersnum": "1"}
    listed = result(await run_admin(admin, "get-disabled-users-list"))["disableduserjids"]
    assert [str(jid) for jid in listed] == [frank_jid]
    assert await harness.server.accounts.exists(JID.parse(frank_jid))  # the data stays

    enabled = await run_admin(admin, "reenable-user", {"accountjids": [frank_jid]})
    assert note(enabled) == ("info", f"Re-enabled: {frank_jid}.")
    frank = await harness.client(frank_jid, resource="back")
    assert frank.boundjid.bare == frank_jid
    assert result(await run_admin(admin, "get-disabled-users-num")) == {"disabledusersnum": "0"}


async def test_message_of_the_day_reaches_each_account_once_per_change(harness: Harness) -> None:
    admin = await commander(harness, "admin")
    alice_jid, bob_jid = await harness.user("alice"), await harness.user("bob")
    alice = await harness.client(alice_jid)
    answer = await run_admin(admin, "set-motd", {"motd": "Welcome to the office server."})
    assert note(answer) == ("info", "The message of the day was set and sent to 2 online sessions.")
    assert (await alice.next_message())["body"] == "Welcome to the office server."
    alice.disconnect()

    bob = await harness.client(bob_jid, resource="one")
    got = await bob.next_message()
    assert (got["from"], got["body"]) == (harness.domain, "Welcome to the office server.")
    assert await quiet(await harness.client(bob_jid, resource="two"), harness)  # once per account
    assert await quiet(await harness.client(alice_jid, resource="again"), harness)  # got it while online

    edit = await admin.plugin["xep_0050"].send_command(harness.domain, f"{NS_ADMIN}#edit-motd", timeout=5)
    assert edit["command"]["form"].get_fields()["motd"]["value"] == ["Welcome to the office server."]
    edited = await run_admin(admin, "edit-motd", {"motd": "Welcome back.\nLunch at noon."})
    assert note(edited) == ("info", "The message of the day was changed; users get it at their next login.")
    assert await quiet(bob, harness)  # an edit waits for the next login
    later = await harness.client(bob_jid, resource="three")
    assert (await later.next_message())["body"] == "Welcome back.\nLunch at noon."

    assert note(await run_admin(admin, "delete-motd")) == ("info", "The message of the day was deleted.")
    assert await quiet(await harness.client(alice_jid, resource="after"), harness)
    assert note(await run_admin(admin, "delete-motd")) == ("warn", "There was no message of the day.")


async def test_end_user_session_disconnects_every_resource(harness: Harness) -> None:
    admin = await commander(harness, "admin")
    gina_jid = await harness.user("gina")
    for resource in ("phone", "pc"):
        await harness.client(gina_jid, resource=resource)
    assert len(harness.server.sessions.resources(JID.parse(gina_jid))) == 2
    ended = await run_admin(admin, "end-user-session", {"accountjids": [gina_jid]})
    assert note(ended) == ("info", f"Ended the sessions of: {gina_jid}.")
    await offline(harness, gina_jid)
    assert await harness.server.accounts.exists(JID.parse(gina_jid))
