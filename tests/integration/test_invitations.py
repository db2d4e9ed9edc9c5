"""Invitations over real sockets with slixmpp: in-band registration with the token (XEP-0445, what
Conversations does with an `xmpp:...;preauth=` link), the XEP-0401 ad-hoc commands, mutual contacts,
reserved names, and multi-use limits and expiry under concurrent redemption."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import slixmpp
from slixmpp.exceptions import IqError
from slixmpp.stanza import StreamFeatures
from slixmpp.xmlstream import ET, ElementBase, register_stanza_plugin

from appliance.modules.invites import CREATE_ACCOUNT, INVITE, InviteOptions
from appliance.modules.register import RegisterOptions
from appliance.services.invitations import InvitationTerms, digest
from appliance.storage.api import Invitation
from appliance.xmpp.jid import JID
from appliance.xmpp.ns import NS_IBR_TOKEN, NS_PREAUTH
from tests.integration.harness import PASSWORD, Client, Harness, start_harness
from tests.integration.harness import make_config as base_config

ADMIN = "admin"
RACERS = 12


class TokenFeature(ElementBase):
    """<register xmlns='urn:xmpp:ibr-token:0'/> among the stream features (XEP-0445 §3)."""

    name = "register"
    namespace = NS_IBR_TOKEN
    plugin_attrib = "ibr_token"
    interfaces: set[str] = set()


class InvitedRegistrant(Client):
    """A slixmpp client doing what Conversations does with an invitation link: on the XEP-0445 stream
    feature it sends the preauth token, then registers by XEP-0077, then logs in."""

    def __init__(self, jid: str, password: str, ca_file: Path, token: str) -> None:
        super().__init__(jid, password, ca_file)
        self.token = token
        for plugin in ("xep_0004", "xep_0066", "xep_0077"):
            self.register_plugin(plugin)
        self.plugin["xep_0077"].create_account = False  # only through the token, below
        register_stanza_plugin(StreamFeatures, TokenFeature)
        self.register_feature("ibr_token", self._register_with_token, restart=False, order=40)
        self.outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def _register_with_token(self, _features: Any) -> bool:
        preauth = self.make_iq_set(ito=self.boundjid.domain)
        preauth.append(ET.Element(f"{{{NS_PREAUTH}}}preauth", token=self.token))
        register = self.Iq()
        register["type"] = "set"
        register["register"]["username"] = self.boundjid.user
        register["register"]["password"] = self.password
        self._always_send_everything = True  # slixmpp holds back IQs before login other than <register/>
        try:
            await preauth.send(timeout=10)
            await register.send(timeout=20)
        except IqError as err:
            self.outcome.set_result(err.iq["error"]["condition"])
            self.disconnect()
            return True
        finally:
            self._always_send_everything = False
        self.outcome.set_result("registered")
        return False  # go on to log in with the new account


async def start(tmp_path: Path, *, allow_users: bool = False) -> Harness:
    """Registration closed (invitations only), `admin` an administrator."""
    config = base_config(tmp_path)
    hosts = tuple(replace(host, modules=host.modules.with_options(
        replace(host.modules.of(RegisterOptions), policy="closed"),
        replace(host.modules.of(InviteOptions), allow_users=allow_users)))
        for host in config.hosts)
    return await start_harness(tmp_path, hosts=hosts,
                               server=replace(config.server, admins=(f"{ADMIN}@{config.hosts[0].name}",)))


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    """Starts a server with `start`'s options; every one started is stopped at the end."""
    started: list[Harness] = []

    async def make(**options: bool) -> Harness:
        started.append(await start(tmp_path, **options))
        return started[-1]

    yield make
    for h in started:
        await h.close()


@pytest.fixture
async def harness(servers: Callable[..., Awaitable[Harness]]) -> Harness:
    return await servers()


async def redeem(h: Harness, name: str, token: str) -> tuple[str, InvitedRegistrant]:
    client = InvitedRegistrant(f"{name}@{h.domain}/phone", PASSWORD, h.ca_file, token)
    h.clients.append(client)
    client.connect(host="127.0.0.1", port=h.port)
    return await asyncio.wait_for(client.outcome, 30), client


def token_of(uri: str) -> str:
    return unquote(uri.split("preauth=")[1].split(";")[0])


async def roster_of(client: Client) -> dict[str, tuple[str, tuple[str, ...]]]:
    roster = await client.get_roster()
    return {str(jid): (item["subscription"], tuple(item["groups"]))
            for jid, item in roster["roster"]["items"].items()}


async def test_conversations_style_registration_with_a_roster_invitation(harness: Harness) -> None:
    alice = await harness.user("alice")
    alice_client = await harness.client(alice)
    pushed: asyncio.Queue[slixmpp.Iq] = asyncio.Queue()
    alice_client.add_event_handler("roster_update", pushed.put_nowait)
    invitations = harness.server.services.invitations
    token, record = await invitations.create(f"{ADMIN}@{harness.domain}",
                                             terms=InvitationTerms(contact=alice, groups=("Office",)))
    assert invitations.uri(record, token) == f"xmpp:{alice}?roster;preauth={token};ibr=y"

    outcome, juliet = await redeem(harness, "juliet", token)
    assert outcome == "registered"
    await asyncio.wait_for(juliet.started.wait(), 15)
    assert await roster_of(juliet) == {alice: ("both", ("Office",))}
    push = await asyncio.wait_for(pushed.get(), 5)  # XEP-0401 §5.5: the inviter's client learns at once
    item = push["roster"]["items"][f"juliet@{harness.domain}"]
    assert (item["subscription"], tuple(item["groups"])) == ("both", ("Office",))
    # Single use: the same token makes no second account.
    again, _client = await redeem(harness, "romeo", token)
    assert again == "item-not-found"
    assert not await harness.server.accounts.exists(JID.parse(f"romeo@{harness.domain}"))


async def test_the_stream_offers_token_registration_and_refuses_bad_tokens(harness: Harness) -> None:
    outcome, _client = await redeem(harness, "mallory", "not-a-token")
    assert outcome == "item-not-found"
    assert not await harness.server.accounts.exists(JID.parse(f"mallory@{harness.domain}"))


async def commander(h: Harness, name: str) -> Client:
    jid = await h.user(name)
    client = await h.client(jid)
    for plugin in ("xep_0004", "xep_0050"):
        client.register_plugin(plugin)
    return client


async def run_command(client: Client, domain: str, node: str, values: dict[str, Any] | None = None) -> dict[str, str]:
    """Execute an ad-hoc command; with `values`, submit its form and complete. The result form's fields."""
    commands = client.plugin["xep_0050"]
    answer = await commands.send_command(domain, node, timeout=10)
    if values is not None:
        form = client.plugin["xep_0004"].make_form(ftype="submit")
        for var, value in values.items():
            form.add_field(var=var, value=value)
        answer = await commands.send_command(domain, node, action="complete", payload=form,
                                             sessionid=answer["command"]["sessionid"], timeout=10)
    assert answer["command"]["status"] == "completed", str(answer)
    fields = answer["command"]["form"].get_fields()
    return {var: field.get_value(convert=False) if field["type"] != "hidden" else field["value"][0]
            for var, field in fields.items()}


async def test_users_invite_from_their_client_when_allowed(servers: Callable[..., Awaitable[Harness]]) -> None:
    h = await servers(allow_users=True)
    bob = await commander(h, "bob")
    items = await bob.plugin["xep_0030"].get_items(jid=h.domain, node="http://jabber.org/protocol/commands")
    assert {INVITE, CREATE_ACCOUNT} <= {item[1] for item in items["disco_items"]["items"]}
    result = await run_command(bob, h.domain, INVITE)
    assert result["FORM_TYPE"] == "urn:xmpp:invite#invitation"
    assert result["uri"].startswith(f"xmpp:bob@{h.domain}?roster;preauth=") and result["uri"].endswith(";ibr=y")
    assert result["landing-url"].startswith(f"https://{h.domain}:") and "/invite/" in result["landing-url"]
    assert time.strptime(result["expire"], "%Y-%m-%dT%H:%M:%SZ")
    outcome, carol = await redeem(h, "carol", token_of(result["uri"]))
    assert outcome == "registered"
    await asyncio.wait_for(carol.started.wait(), 15)
    assert (await roster_of(carol))[f"bob@{h.domain}"][0] == "both"

    # Create account with a reserved name: only that name, and no one else may take it meanwhile.
    made = await run_command(bob, h.domain, CREATE_ACCOUNT, {"username": "dave", "roster-subscription": "0"})
    assert made["uri"].startswith(f"xmpp:dave@{h.domain}?register;preauth=")
    wrong, _client = await redeem(h, "eve", token_of(made["uri"]))
    assert wrong == "not-acceptable"
    outcome, dave = await redeem(h, "dave", token_of(made["uri"]))
    assert outcome == "registered"
    await asyncio.wait_for(dave.started.wait(), 15)
    assert await roster_of(dave) == {}


async def test_users_cannot_invite_unless_the_administrator_allows_it(harness: Harness) -> None:
    bob = await commander(harness, "bob")
    with pytest.raises(IqError) as refused:
        await bob.plugin["xep_0050"].send_command(harness.domain, INVITE, timeout=10)
    assert refused.value.iq["error"]["condition"] == "forbidden"
    boss = await commander(harness, ADMIN)
    assert (await run_command(boss, harness.domain, INVITE))["uri"].startswith(f"xmpp:{ADMIN}@")


async def test_a_multi_use_invitation_makes_exactly_its_limit_under_concurrent_registrations(
        harness: Harness) -> None:
    token, _record = await harness.server.services.invitations.create(
        f"{ADMIN}@{harness.domain}", terms=InvitationTerms(uses=3))
    outcomes = await asyncio.gather(*(redeem(harness, f"racer{i}", token) for i in range(RACERS)))
    assert sum(outcome == "registered" for outcome, _client in outcomes) == 3, [o for o, _c in outcomes]
    accounts = harness.server.accounts
    assert accounts is not None
    made = [i for i in range(RACERS) if await accounts.exists(JID.parse(f"racer{i}@{harness.domain}"))]
    assert len(made) == 3
    (record,) = await harness.server.services.invitations.list()
    assert record.uses == 3 and sorted(record.used_by) == sorted(f"racer{i}@{harness.domain}" for i in made)


async def test_an_expired_invitation_makes_nothing(harness: Harness) -> None:
    store = harness.server.services.invitations.store
    now = time.time()
    await store.create(Invitation("old1", digest("expired-token"), harness.domain, "test", now - 1, now - 100,
                                  max_uses=5))
    outcome, _client = await redeem(harness, "late", "expired-token")
    assert outcome == "item-not-found"
    assert await store.claim(digest("expired-token"), f"late@{harness.domain}", time.time()) is None


async def test_the_invitee_joins_the_chosen_shared_groups(harness: Harness) -> None:
    alice, bob = await harness.user("alice"), await harness.user("bob")
    admin = f"{ADMIN}@{harness.domain}"
    await harness.server.services.groups.create(admin, harness.domain, "Office", members=["alice", "bob"])
    # "Office" is a shared group: the invitee joins it; "Friends" is not: it only labels the contact.
    token, _record = await harness.server.services.invitations.create(
        admin, terms=InvitationTerms(contact=alice, groups=("Office", "Friends")))
    outcome, dana = await redeem(harness, "dana", token)
    assert outcome == "registered"
    await asyncio.wait_for(dana.started.wait(), 15)
    (office,) = [g for g in await harness.server.services.groups.groups(harness.domain) if g.name == "Office"]
    assert f"dana@{harness.domain}" in office.members
    roster = await roster_of(dana)
    assert roster[bob][0] == "both"  # a colleague through the shared group, not through the invitation
    assert roster[alice][0] == "both" and "Friends" in roster[alice][1]
