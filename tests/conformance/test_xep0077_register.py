"""XEP-0077 In-Band Registration (2.4), from the text."""

from __future__ import annotations

import uuid

from lxml import etree

from tests.conformance.client import NS, assert_stanza_error, connect, q, raw_open, register_account
from tests.conformance.conftest import ServerInfo, xfail_on
from tests.conformance.contacts import assert_result

REG = NS["register"]


def _register(username: str, password: str | None) -> str:
    pw = "" if password is None else f"<password>{password}</password>"
    return f"<iq type='set'><query xmlns='{REG}'><username>{username}</username>{pw}</query></iq>"


async def test_stream_feature_and_form_before_login(server: ServerInfo) -> None:
    # §3.1 and §8 (stream feature): the server advertises <register xmlns='http://jabber.org/features/
    # iq-register'/>; an IQ get returns the fields to fill in (here at least username and password).
    stream = await raw_open(server)
    try:
        assert stream.features is not None
        assert stream.features.find("{http://jabber.org/features/iq-register}register") is not None
        query = assert_result(await stream.iq(f"<iq type='get'><query xmlns='{REG}'/></iq>"), "register:query")
    finally:
        await stream.close()
    assert query is not None
    legacy = query.find(q("register:username")) is not None and query.find(q("register:password")) is not None
    form_vars = {f.get("var") for f in query.iter(q("data:field"))}
    assert legacy or {"username", "password"} <= form_vars
    assert query.find(q("register:registered")) is None


@xfail_on("ejabberd", reason="XEP-0077 §3.1: missing information MUST be <not-acceptable/>; ejabberd answers "
          "<bad-request/>")
async def test_conflict_and_missing_information(server: ServerInfo) -> None:
    # §3.1: a taken username → <conflict/>; missing information (including an empty password) MUST be
    # <not-acceptable/>.
    stream = await raw_open(server)
    try:
        assert_stanza_error(await stream.iq(_register("alice", "another-pass")), "cancel", "conflict")
        fresh = f"u{uuid.uuid4().hex[:10]}"
        assert_stanza_error(await stream.iq(_register(fresh, None)), None, "not-acceptable")
        assert_stanza_error(await stream.iq(_register(fresh, "")), None, "not-acceptable")
    finally:
        await stream.close()


async def test_registered_user_sees_registered(server: ServerInfo) -> None:
    # §3.1: for an entity already registered the result MUST contain an empty <registered/>.
    async with connect(server, "alice") as c:
        query = assert_result(await c.iq(f"<iq type='get'><query xmlns='{REG}'/></iq>"), "register:query")
    assert query is not None and query.find(q("register:registered")) is not None


async def test_password_change(server: ServerInfo) -> None:
    # §3.3: username + new password in an IQ set → empty result; the new password is the one that works.
    name = await register_account(server)
    async with connect(server, name) as c:
        assert_result(await c.iq(f"<iq type='set' to='{server.domain}'><query xmlns='{REG}'><username>{name}"
                                 "</username><password>changed-pass-1</password></query></iq>"))
    async with connect(server, name, password="changed-pass-1") as c:
        assert c.jid is not None
    stream = await raw_open(server)
    try:
        assert (await stream.auth_plain(name, server.password)).tag == q("sasl:failure")
    finally:
        await stream.close()


@xfail_on("prosody", reason="XEP-0077 §3.3: an empty <password/> MUST NOT change the password; Prosody sets "
          "the empty password")
async def test_empty_password_keeps_the_old_one(server: ServerInfo) -> None:
    # §3.3: an empty <password/> MUST NOT change the password to a null value; the existing one stays.
    name = await register_account(server)
    async with connect(server, name) as c:
        await c.iq(f"<iq type='set'><query xmlns='{REG}'><username>{name}</username><password/></query></iq>")
    async with connect(server, name) as c:
        assert c.jid is not None


async def test_cancel_registration(server: ServerInfo) -> None:
    # §3.2: <remove/> → IQ result; the account is gone (logging in again fails).
    name = await register_account(server)
    async with connect(server, name) as c:
        reply = await c.iq(f"<iq type='set'><query xmlns='{REG}'><remove/></query></iq>")
        assert_result(reply)
    stream = await raw_open(server)
    try:
        assert (await stream.auth_plain(name, server.password)).tag == q("sasl:failure")
    finally:
        await stream.close()


@xfail_on("ejabberd", "prosody", reason="XEP-0077 §3.2 error table: <remove/> not the only child is "
          "<bad-request/>; both peers remove the account")
async def test_remove_with_other_children_is_bad_request(server: ServerInfo) -> None:
    # §3.2 error table: <remove/> not the only child of <query/> → <bad-request/>.
    name = await register_account(server)
    async with connect(server, name) as c:
        reply = await c.iq(f"<iq type='set'><query xmlns='{REG}'><remove/><username>{name}</username></query></iq>")
        assert_stanza_error(reply, None, "bad-request")


@xfail_on("ejabberd", reason="XEP-0077 §3.3: error replies about password changes SHOULD NOT repeat the "
          "request; ejabberd echoes it, new password included")
async def test_password_change_error_does_not_repeat_the_password(server: ServerInfo) -> None:
    # §3.3: "The server or service SHOULD NOT return the original XML sent in IQ error stanzas related to
    # password changes" (here: someone else's username, which no server accepts).
    async with connect(server, "alice") as c:
        reply = await c.iq(f"<iq type='set'><query xmlns='{REG}'><username>bob</username>"
                           "<password>secret-new-pass</password></query></iq>")
    assert reply.get("type") == "error"
    assert b"secret-new-pass" not in etree.tostring(reply)
