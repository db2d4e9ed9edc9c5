"""XEP-0077 in-band registration over real sockets: sign-up by policy, errors, password change, removal."""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from slixmpp.exceptions import IqError

from appliance.modules.register import RegisterOptions, RegistrationPolicy
from appliance.xmpp.jid import JID
from tests.integration.harness import PASSWORD, Client, Harness, start_harness
from tests.integration.harness import make_config as base_config  # a test_ name would be collected

NEW_PASSWORD = "a much better passphrase"


async def start_with_policy(state_dir: Path, policy: RegistrationPolicy, **options: Any) -> Harness:
    """A harness whose host has the given registration policy (and other register `options`)."""
    hosts = tuple(
        replace(
            host,
            modules=host.modules.with_options(replace(host.modules.of(RegisterOptions), policy=policy, **options)),
        )
        for host in base_config(state_dir).hosts
    )
    return await start_harness(state_dir, hosts=hosts)


@pytest.fixture
async def open_harness(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await start_with_policy(tmp_path, "open")
    try:
        yield harness
    finally:
        await harness.close()


class RawStream:
    """A hand-driven client stream (STARTTLS, no login) for pre-authentication exchanges."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.buffer = b""
        self.features = b""

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.harness.port)
        await self._header()
        self.writer.write(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        await self.read_until(b"<proceed")
        context = ssl.create_default_context(cafile=str(self.harness.ca_file))
        await self.writer.start_tls(context, server_hostname=self.harness.domain)
        self.buffer = b""
        await self._header()

    async def _header(self) -> None:
        self.writer.write(
            f"<?xml version='1.0'?><stream:stream to='{self.harness.domain}' version='1.0' "
            "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>".encode()
        )
        self.features = await self.read_until(b"</stream:features>")

    async def read_until(self, marker: bytes) -> bytes:
        """Everything up to and including the first match of `marker` (a regular expression)."""
        pattern = re.compile(marker)
        while (found := pattern.search(self.buffer)) is None:
            chunk = await asyncio.wait_for(self.reader.read(65536), 5)
            if not chunk:
                raise ConnectionError(f"stream closed before {marker!r}: {self.buffer!r}")
            self.buffer += chunk
        head, self.buffer = self.buffer[: found.end()], self.buffer[found.end() :]
        return head

    async def iq(self, iq_type: str, payload: str) -> bytes:
        """Send an IQ and return the answer (the text up to its end)."""
        self.writer.write(f"<iq type='{iq_type}' id='r1'>{payload}</iq>".encode())
        answer = await self.read_until(rb"<iq[^>]*/>|</iq>")
        return answer[answer.index(b"<iq") :]

    async def register(self, username: str, password: str) -> bytes:
        return await self.iq(
            "set",
            f"<query xmlns='jabber:iq:register'><username>{username}</username>"
            f"<password>{password}</password></query>",
        )

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def raw_open(open_harness: Harness) -> AsyncIterator[RawStream]:
    stream = RawStream(open_harness)
    await stream.open()
    try:
        yield stream
    finally:
        stream.close()


def condition(answer: bytes) -> str:
    found = re.search(rb"<([a-z-]+) xmlns=['\"]urn:ietf:params:xml:ns:xmpp-stanzas['\"]", answer)
    assert found, answer
    return found.group(1).decode()


class Registrant(Client):
    """A slixmpp client that registers its account through the stream feature, then logs in."""

    def __init__(self, jid: str, password: str, ca_file: Path) -> None:
        super().__init__(jid, password, ca_file)
        for plugin in ("xep_0030", "xep_0004", "xep_0066", "xep_0077"):
            self.register_plugin(plugin)
        self.outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.add_event_handler("register", self._register)

    async def _register(self, _form: Any) -> None:
        iq = self.Iq()
        iq["type"] = "set"
        iq["register"]["username"] = self.boundjid.user
        iq["register"]["password"] = self.password
        try:
            await iq.send()
        except IqError as err:
            self.outcome.set_result(err.iq["error"]["condition"])
            self.disconnect()
        else:
            self.outcome.set_result("registered")


async def test_register_over_a_fresh_connection_then_log_in(open_harness: Harness) -> None:
    client = Registrant(f"newbie@{open_harness.domain}/desk", PASSWORD, open_harness.ca_file)
    open_harness.clients.append(client)
    client.connect(host="127.0.0.1", port=open_harness.port)
    assert await asyncio.wait_for(client.outcome, 15) == "registered"
    await asyncio.wait_for(client.started.wait(), 15)
    assert str(client.boundjid) == f"newbie@{open_harness.domain}/desk"
    assert open_harness.server.accounts is not None
    assert await open_harness.server.accounts.exists(JID.parse(f"newbie@{open_harness.domain}"))


async def test_registration_form_and_stream_feature(raw_open: RawStream) -> None:
    assert b"http://jabber.org/features/iq-register" in raw_open.features
    form = await raw_open.iq("get", "<query xmlns='jabber:iq:register'/>")
    assert b'type="result"' in form
    for needed in (b"<username/>", b"<password/>", b"<instructions>", b"jabber:x:data", b"FORM_TYPE"):
        assert needed in form


async def test_closed_policy_refuses_and_hides_the_feature(harness: Harness) -> None:
    stream = RawStream(harness)
    await stream.open()
    try:
        assert b"iq-register" not in stream.features
        form = await stream.iq("get", "<query xmlns='jabber:iq:register'/>")
        assert condition(form) == "service-unavailable"
        assert condition(await stream.register("sneaky", PASSWORD)) == "service-unavailable"
    finally:
        stream.close()
    assert harness.server.accounts is not None
    assert not await harness.server.accounts.exists(JID.parse(f"sneaky@{harness.domain}"))


async def test_conflict_weak_password_and_missing_fields(open_harness: Harness, raw_open: RawStream) -> None:
    await open_harness.user("alice")
    assert condition(await raw_open.register("alice", PASSWORD)) == "conflict"
    weak = await raw_open.register("bob", "short")
    assert condition(weak) == "not-acceptable"
    assert b"at least" in weak
    missing = await raw_open.iq("set", "<query xmlns='jabber:iq:register'><username>bob</username></query>")
    assert condition(missing) == "not-acceptable"
    assert condition(await raw_open.register("", PASSWORD)) == "not-acceptable"
    assert b'type="result"' in await raw_open.register("bob", PASSWORD)


async def test_registrations_per_address_are_limited(tmp_path: Path) -> None:
    harness = await start_with_policy(tmp_path, "open", max_per_ip_per_hour=2)
    stream = RawStream(harness)
    try:
        await stream.open()
        assert b'type="result"' in await stream.register("one", PASSWORD)
        assert b'type="result"' in await stream.register("two", PASSWORD)
        assert condition(await stream.register("three", PASSWORD)) == "policy-violation"
    finally:
        stream.close()
        await harness.close()


async def test_remove_before_login_is_not_authorized(raw_open: RawStream) -> None:
    answer = await raw_open.iq("set", "<query xmlns='jabber:iq:register'><remove/></query>")
    assert condition(answer) == "not-authorized"


async def test_change_password_then_log_in_with_the_new_one(harness: Harness) -> None:
    alice = await harness.user("alice")
    client = await harness.client(alice, presence=False, roster=False)
    client.register_plugin("xep_0077")
    result = await client.plugin["xep_0077"].get_registration()
    assert result["register"]["registered"]
    assert result["register"]["username"] == "alice"
    await client.plugin["xep_0077"].change_password(NEW_PASSWORD)
    client.disconnect()

    again = await harness.client(alice, NEW_PASSWORD, resource="again", presence=False, roster=False)
    assert again.is_connected()
    old = Client(f"{alice}/old", PASSWORD, harness.ca_file)
    harness.clients.append(old)
    old.connect(host="127.0.0.1", port=harness.port)
    await asyncio.wait_for(old.auth_failed.wait(), 15)


async def test_weak_new_password_is_refused(harness: Harness) -> None:
    alice = await harness.user("alice")
    client = await harness.client(alice, presence=False, roster=False)
    client.register_plugin("xep_0077")
    with pytest.raises(IqError) as caught:
        await client.plugin["xep_0077"].change_password("short")
    assert caught.value.iq["error"]["condition"] == "not-acceptable"


async def test_cancel_registration_deletes_the_account_and_disconnects(harness: Harness) -> None:
    alice = await harness.user("alice")
    phone = await harness.client(alice, resource="phone")
    laptop = await harness.client(alice, resource="laptop")
    closed = {name: asyncio.Event() for name in ("phone", "laptop")}
    phone.add_event_handler("disconnected", lambda _e: closed["phone"].set())
    laptop.add_event_handler("disconnected", lambda _e: closed["laptop"].set())
    errors: list[str] = []
    laptop.add_event_handler("stream_error", lambda err: errors.append(err["condition"]))
    phone.register_plugin("xep_0077")

    await phone.plugin["xep_0077"].cancel_registration()
    await asyncio.wait_for(closed["phone"].wait(), 5)
    await asyncio.wait_for(closed["laptop"].wait(), 5)
    assert errors == ["not-authorized"]
    assert harness.server.accounts is not None
    assert not await harness.server.accounts.exists(JID.parse(alice))
