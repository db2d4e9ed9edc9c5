"""Parlour with [ldap] against a real slapd over StartTLS: real slixmpp clients log in with their directory
passwords (never stored here) beside a local account, get vCards filled from the directory, and see the
members of a nested directory group as a shared group."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from slixmpp.exceptions import IqError

from appliance.core.accounts import DirectoryUnavailable
from appliance.modules.shared_roster import SharedRoster
from appliance.xmpp.jid import JID
from tests.directory.slapd import GROUPS, PASSWORDS, PEOPLE, PHOTO, Slapd
from tests.directory.test_ldap import ldap_config
from tests.integration.harness import PASSWORD, Client, Harness, free_port, start_harness
from tests.integration.test_shared_roster import next_push, pushing_client, roster_items

ADMIN = "admin@localhost"


@pytest.fixture
async def harness(tmp_path: Path, slapd: Slapd) -> AsyncIterator[Harness]:
    h = await start_harness(tmp_path, ldap=ldap_config(slapd))
    try:
        yield h
    finally:
        await h.close()


async def failed_login(harness: Harness, jid: str, password: str) -> str:
    """Log in with a refused password; returns the SASL failure's condition."""
    client = Client(f"{jid}/test", password, harness.ca_file)
    harness.clients.append(client)
    failure: asyncio.Queue[Any] = asyncio.Queue()
    client.add_event_handler("failed_auth", failure.put_nowait)
    client.connect(host="127.0.0.1", port=harness.port)
    stanza = await asyncio.wait_for(failure.get(), 15)
    client.disconnect()
    return str(stanza["condition"])


async def test_directory_users_and_a_local_account_log_in(harness: Harness) -> None:
    alice = await harness.client("alice@localhost", PASSWORDS["alice"])
    assert alice.plugin["feature_mechanisms"].mech.name == "PLAIN"  # SCRAM cannot work without stored keys
    assert harness.server.stores is not None
    accounts = harness.server.stores.accounts
    assert await accounts.exists("localhost", "alice")  # made at the first login ...
    assert await accounts.get_keys("localhost", "alice", "SHA-256") is None  # ... with no password stored
    assert await accounts.directory_dn("localhost", "alice") == "uid=alice,ou=people,dc=example,dc=test"

    local = await harness.user("admin")  # a local account keeps its own password beside the directory
    await harness.client(local)
    assert await failed_login(harness, "alice@localhost", "not her password") == "not-authorized"
    assert await failed_login(harness, "nobody@localhost", "whatever") == "not-authorized"
    # a local account's password is never checked in the directory
    assert await failed_login(harness, local, PASSWORDS["alice"]) == "not-authorized"

    # The password lives in the directory: it cannot be set here.
    assert harness.server.services is not None
    from appliance.services.errors import Refused

    with pytest.raises(Refused):
        await harness.server.services.accounts.reset_password(ADMIN, "alice@localhost", "a new password")


async def test_vcard_and_avatar_filled_from_the_directory(harness: Harness) -> None:
    alice = await harness.client("alice@localhost", PASSWORDS["alice"])
    bob = await harness.client("bob@localhost", PASSWORDS["bob"])
    bob.register_plugin("xep_0054")
    for _ in range(100):  # the login does not wait for the vCard; it follows at once
        try:
            vcard = (await bob.plugin["xep_0054"].get_vcard("alice@localhost"))["vcard_temp"]
        except IqError:
            vcard = None
        if vcard is not None and vcard["FN"]:
            break
        await asyncio.sleep(0.05)
    assert vcard is not None
    assert vcard["FN"] == "Alice Liddell"
    assert (vcard["N"]["GIVEN"], vcard["N"]["FAMILY"]) == ("Alice", "Liddell")
    assert vcard["EMAIL"]["USERID"] == "alice@example.test"
    assert vcard["TEL"]["NUMBER"] == "+1 555 0100"
    assert vcard["PHOTO"]["TYPE"] == "image/jpeg"
    assert vcard["PHOTO"]["BINVAL"] == PHOTO
    # The photo is her PEP avatar too (XEP-0084), for clients that show only those.
    alice.register_plugin("xep_0060")
    items = await alice.plugin["xep_0060"].get_items(jid="alice@localhost", node="urn:xmpp:avatar:metadata")
    info = items.xml.find(".//{urn:xmpp:avatar:metadata}info")
    assert info is not None and info.get("id") == hashlib.sha1(PHOTO).hexdigest()
    assert (info.get("type"), info.get("bytes")) == ("image/jpeg", str(len(PHOTO)))


async def test_shared_group_from_a_nested_directory_group(harness: Harness) -> None:
    assert harness.server.services is not None
    desk = harness.server.services.groups
    await desk.create(ADMIN, "localhost", "Staff", directory_group=f"cn=staff,{GROUPS}")
    # bob (engineering > backend) and carol (sales) never logged in: their accounts exist now, so messages
    # to them wait as offline messages.
    assert harness.server.stores is not None
    assert await harness.server.stores.accounts.exists("localhost", "carol")
    alice = await harness.client("alice@localhost", PASSWORDS["alice"])
    assert set(alice.client_roster) == {"bob@localhost", "carol@localhost"}
    assert alice.client_roster["bob@localhost"]["groups"] == ["Staff"]
    assert alice.client_roster["bob@localhost"]["name"] == "Bob Builder"  # the directory's name for him
    assert "dave@localhost" not in alice.client_roster


async def test_directory_group_changes_reach_online_members(harness: Harness, slapd: Slapd) -> None:
    assert harness.server.services is not None
    await harness.server.services.groups.create(ADMIN, "localhost", "Sales", directory_group=f"cn=sales,{GROUPS}")
    carol = await pushing_client(harness, "carol@localhost", PASSWORDS["carol"])
    assert set(carol.client_roster) == set()  # alone in sales so far
    module = next(m for m in harness.server.hosts["localhost"].modules if isinstance(m, SharedRoster))
    change = f"dn: cn=sales,{GROUPS}\nchangetype: modify\n%s: member\nmember: uid=dave,{PEOPLE}\n"
    slapd.ldapmodify(change % "add")
    try:
        await module.sync_directory()  # what the server does every ldap.sync_interval
        assert await next_push(carol) == ("dave@localhost", "both", ["Sales"])
    finally:
        slapd.ldapmodify(change % "delete")
    await module.sync_directory()
    assert await next_push(carol) == ("dave@localhost", "remove", [])

    # The directory goes away: the next sync keeps the members it read last (no removal pushes).
    await harness.server.services.groups.create(ADMIN, "localhost", "Staff", directory_group=f"cn=staff,{GROUPS}")
    assert sorted([await next_push(carol), await next_push(carol)]) == [
        ("alice@localhost", "both", ["Staff"]), ("bob@localhost", "both", ["Staff"])]
    directory = harness.server.directory
    assert directory is not None
    directory.config = dataclasses.replace(directory.config, uri=f"ldap://127.0.0.1:{free_port()}")
    directory.port = int(directory.config.uri.rsplit(":", 1)[1])
    directory.close()  # the pooled connections to the real slapd go; new ones fail
    await module.sync_directory()
    assert "cannot be reached" in directory.status.last_error
    assert set(await roster_items(carol)) == {"alice@localhost", "bob@localhost"}
    assert carol.pushes.empty()  # type: ignore[attr-defined]


async def test_directory_down_is_a_temporary_failure(tmp_path: Path, slapd: Slapd) -> None:
    harness = await start_harness(tmp_path, ldap=ldap_config(slapd, uri=f"ldap://127.0.0.1:{free_port()}"))
    try:
        local = await harness.user("admin")
        await harness.client(local, PASSWORD)  # local accounts do not need the directory
        assert await failed_login(harness, "alice@localhost", PASSWORDS["alice"]) == "temporary-auth-failure"
        assert harness.server.directory is not None
        assert "cannot be reached" in harness.server.directory.status.last_error
        assert not await harness.server.stores.accounts.exists("localhost", "alice")  # type: ignore[union-attr]
        assert harness.server.accounts is not None
        with pytest.raises(DirectoryUnavailable, match="cannot be reached"):
            await harness.server.accounts.verify_plain(JID.parse("alice@localhost"), PASSWORDS["alice"])
    finally:
        await harness.close()
