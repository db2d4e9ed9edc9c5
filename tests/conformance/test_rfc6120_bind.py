"""RFC 6120 §7: resource binding (requested, server-generated, invalid, conflicts)."""

from __future__ import annotations

import uuid

from tests.conformance.client import NS, assert_stanza_error, connect, q, raw_open, to_string
from tests.conformance.conftest import ServerInfo, xfail_on


async def _logged_in(server: ServerInfo, user: str = "alice"):  # type: ignore[no-untyped-def]
    s = await raw_open(server)
    await s.login(user, server.password)
    return s


async def test_bind_requested_resource(server: ServerInfo) -> None:
    # §7.6.1 / §7.6.2: the client asks for a resource; the server answers with the full JID in <jid/>.
    s = await _logged_in(server)
    try:
        resource = f"conf-{uuid.uuid4().hex[:6]}"
        reply = await s.bind(resource)
        assert reply.get("type") == "result", to_string(reply)
        assert s.jid == server.jid("alice", resource)
    finally:
        await s.close()


async def test_bind_server_generated_resource(server: ServerInfo) -> None:
    # §7.6: "the client asks the server to generate a resourcepart on its behalf" with an empty <bind/>.
    s = await _logged_in(server)
    try:
        reply = await s.bind(None)
        assert reply.get("type") == "result", to_string(reply)
        assert s.jid is not None
        bare, _, resource = s.jid.partition("/")
        assert bare == server.jid("alice") and resource
    finally:
        await s.close()


async def _bind_refused_or_replaced(server: ServerInfo, resource: str) -> None:
    """§7.7.2.1: a resourcepart that cannot be processed per [XMPP-ADDR] "can" get <bad-request/>; the server
    may instead assign one of its own (§7.7.1: it MAY override the client's resourcepart). The invalid one
    is never bound, and the stream goes on."""
    s = await _logged_in(server)
    try:
        reply = await s.bind(resource)
        if reply.get("type") == "error":
            assert_stanza_error(reply, "modify", "bad-request")
            assert (await s.bind("good")).get("type") == "result"
        else:
            assert s.jid is not None and s.jid.startswith(server.jid("alice") + "/")
            assert s.jid.partition("/")[2] != resource
    finally:
        await s.close()


async def test_bind_invalid_resource(server: ServerInfo) -> None:
    # U+0085 is a control character, forbidden in a resourcepart (RFC 7622 §3.4 OpaqueString; Resourceprep).
    await _bind_refused_or_replaced(server, "bad\u0085resource")


async def test_bind_too_long_resource(server: ServerInfo) -> None:
    # RFC 7622 §3.4: a resourcepart is at most 1023 octets.
    await _bind_refused_or_replaced(server, "r" * 1100)


async def test_bind_conflict_policy(server: ServerInfo) -> None:
    # §7.7.2.2: on a resource conflict the server MUST either terminate the existing session (conflict
    # stream error to it), refuse the new binding (<conflict/> stanza error), or give the new session a
    # different resource.
    resource = f"dup-{uuid.uuid4().hex[:6]}"
    async with connect(server, "alice", resource=resource) as first:
        s = await _logged_in(server)
        try:
            reply = await s.bind(resource)
            if reply.get("type") == "error":
                assert_stanza_error(reply, "cancel", "conflict")
                await first.sync()  # the first session is untouched
            elif s.jid == server.jid("alice", resource):
                await first.expect_stream_error("conflict")
                await first.wait_closed()
            else:
                assert s.jid is not None and s.jid.startswith(server.jid("alice") + "/")
                await first.sync()
        finally:
            await s.close()


async def test_bind_iq_has_one_full_jid(server: ServerInfo) -> None:
    # §7.6.1: the result contains <bind/> with exactly one <jid/> holding the full JID.
    s = await _logged_in(server)
    try:
        reply = await s.bind("one")
        jids = reply.findall(f"{q('bind:bind')}/{q('bind:jid')}")
        assert len(jids) == 1 and jids[0].text == server.jid("alice", "one")
        assert reply.find(q("bind:bind")) is not None and NS["bind"]
    finally:
        await s.close()


@xfail_on("ejabberd", reason="RFC 6120 §8.2.3: ejabberd 23.01 never answers an IQ get sent to the server "
                             "after authentication but before binding")
async def test_iq_before_bind_is_answered(server: ServerInfo) -> None:
    # §7.1 allows stanzas to the server itself before binding (the server may refuse them); §8.2.3: "An
    # entity that receives an IQ request of type "get" or "set" MUST reply with an IQ response of type
    # "result" or "error"".
    s = await _logged_in(server)
    try:
        reply = await s.iq(f"<iq type='get' to='{server.domain}'><ping xmlns='{NS['ping']}'/></iq>", timeout=3.0)
        assert reply.get("type") in ("result", "error")
    finally:
        await s.close()
