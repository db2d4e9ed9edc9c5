"""XMPP over BOSH (XEP-0124/0206) against a real server: login, long polling, rid rules, limits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from lxml import etree

from appliance.xmpp.jid import JID
from appliance.xmpp.ns import NS_BOSH, NS_CLIENT, NS_SASL, NS_STREAM, NS_STREAMS
from tests.integration.harness import PASSWORD, Harness
from tests.web.clients import BoshClient, children, dump, mechanisms, message, plain_auth
from tests.web.conftest import trust, web_harness

MESSAGE = f"{{{NS_CLIENT}}}message"


def url(h: Harness, *, https: bool = False) -> str:
    return f"https://localhost:{h.https_port}/http-bind" if https else f"http://127.0.0.1:{h.http_port}/http-bind"


async def next_message(bosh: BoshClient, poll: asyncio.Future, timeout: float = 10.0) -> etree._Element:
    """Long-poll (starting with a request already sent) until a response carries a message."""
    async with asyncio.timeout(timeout):
        body = await poll
        while not children(body, MESSAGE):
            body = await bosh.post()
    return children(body, MESSAGE)[0]


async def test_login_and_chat_with_a_tcp_client(harness: Harness) -> None:
    alice = await harness.user("alice")
    bob_jid = await harness.user("bob")
    bob = await harness.client(bob_jid)
    bosh = BoshClient(url(harness))
    try:
        jid = await bosh.login(harness.domain, "alice", PASSWORD)
        assert jid == f"{alice}/bosh"
        # A request that only sends is held (hold=1) until the next request releases it; that one
        # then stays held until the server has something to say.
        sent = asyncio.ensure_future(bosh.post(f"<presence xmlns='{NS_CLIENT}'/>" + message(bob_jid, "hi")))
        poll = asyncio.ensure_future(bosh.post())
        await asyncio.wait_for(sent, 10)
        got = await bob.next_message()
        assert got["body"] == "hi"
        assert str(got["from"]) == jid

        bob.send_message(mto=jid, mbody="hello from TCP", mtype="chat")
        received = await next_message(bosh, poll)
        assert received.findtext(f"{{{NS_CLIENT}}}body") == "hello from TCP"
        assert received.get("from", "").startswith(bob_jid)
    finally:
        await bosh.close()


async def test_session_creation_response_and_caps(harness: Harness) -> None:
    bosh = BoshClient(url(harness))
    try:
        first = await bosh.start(harness.domain, wait="600", hold="9")
        assert first.tag == f"{{{NS_BOSH}}}body"
        assert first.get("sid") and first.get("authid")
        assert first.get("from") == harness.domain
        assert first.get("wait") == "60" and first.get("hold") == "2" and first.get("requests") == "3"
        assert first.get("{urn:xmpp:xbosh}restartlogic") == "true"
        assert first.find(f"{{{NS_STREAM}}}features") is not None
    finally:
        await bosh.close()


async def test_a_repeated_rid_gets_the_same_answer(harness: Harness) -> None:
    await harness.user("dora")
    bosh = BoshClient(url(harness))
    try:
        await bosh.start(harness.domain)
        _rid, data = bosh.body(plain_auth("dora", PASSWORD))
        first = await bosh.post_raw(data)
        again = await bosh.post_raw(data)  # as if the first answer had been lost
        assert first.find(f"{{{NS_SASL}}}success") is not None
        assert dump(first) == dump(again)
    finally:
        await bosh.close()


async def test_unknown_sid_and_rid_outside_the_window_terminate(harness: Harness) -> None:
    bosh = BoshClient(url(harness))
    try:
        bosh.sid = "no-such-session"
        answer = await bosh.post()
        assert answer.get("type") == "terminate" and answer.get("condition") == "item-not-found"

        bosh.sid = ""
        await bosh.start(harness.domain)
        bosh.rid += 10
        answer = await bosh.post()
        assert answer.get("type") == "terminate" and answer.get("condition") == "item-not-found"
    finally:
        await bosh.close()


async def test_terminate_ends_the_session(harness: Harness) -> None:
    await harness.user("erin")
    bosh = BoshClient(url(harness))
    try:
        jid = await bosh.login(harness.domain, "erin", PASSWORD)
        assert harness.server.sessions.count_for(_bare(jid)) == 1
        answer = await bosh.post(f"<presence xmlns='{NS_CLIENT}' type='unavailable'/>", type="terminate")
        assert answer.get("type") == "terminate"
        await asyncio.sleep(0.05)
        assert harness.server.sessions.count_for(_bare(jid)) == 0
        after = await bosh.post()
        assert after.get("condition") == "item-not-found"
    finally:
        await bosh.close()


async def test_plain_http_is_not_encrypted_but_https_is(tmp_path: Path) -> None:
    h = await web_harness(tmp_path)  # no consider_bosh_secure
    plain = BoshClient(url(h))
    secure = BoshClient(url(h, https=True), ssl_context=trust(h))
    try:
        assert mechanisms(await plain.start(h.domain)) == []
        frank = await h.user("frank")
        assert await secure.login(h.domain, "frank", PASSWORD) == f"{frank}/bosh"
    finally:
        await plain.close()
        await secure.close()
        await h.close()


async def test_inactive_sessions_are_closed(tmp_path: Path) -> None:
    h = await web_harness(tmp_path, consider_bosh_secure=True, bosh_inactivity=0.3)
    await h.user("gina")
    bosh = BoshClient(url(h))
    try:
        jid = await bosh.login(h.domain, "gina", PASSWORD)
        async with asyncio.timeout(5):
            while h.server.sessions.count_for(_bare(jid)):
                await asyncio.sleep(0.05)
        answer = await bosh.post()
        assert answer.get("condition") == "item-not-found"
    finally:
        await bosh.close()
        await h.close()


async def test_stream_errors_arrive_as_remote_stream_error(harness: Harness) -> None:
    bosh = BoshClient(url(harness))
    try:
        await bosh.start(harness.domain)
        answer = await bosh.post(message("x@localhost", "not logged in"))
        assert answer.get("type") == "terminate"
        assert answer.get("condition") == "remote-stream-error"
        error = answer.find(f"{{{NS_STREAM}}}error")
        assert error is not None and error.find(f"{{{NS_STREAMS}}}not-authorized") is not None
    finally:
        await bosh.close()


async def test_oversized_and_malformed_bodies(harness: Harness) -> None:
    limit = harness.server.config.limits.max_stanza_size * 2
    async with aiohttp.ClientSession() as http:
        async with http.post(url(harness), data=b"<body" + b" " * limit + b"/>") as response:
            assert response.status == 413
        unfinished = b"<body xmlns='http://jabber.org/protocol/httpbind'"
        async with http.post(url(harness), data=unfinished) as response:
            text = await response.text()
            assert response.status == 200 and "bad-request" in text
        async with http.post(url(harness), data=b"<!DOCTYPE x><body/>") as response:
            text = await response.text()  # restricted XML: the stream error inside (XEP-0206 §8)
            assert 'condition="remote-stream-error"' in text and "restricted-xml" in text


async def test_cors_preflight_and_origin_list(tmp_path: Path) -> None:
    h = await web_harness(tmp_path, allowed_origins=("https://chat.example.org",))
    try:
        async with aiohttp.ClientSession() as http:
            good = {"Origin": "https://chat.example.org"}
            async with http.options(url(h), headers=good) as response:
                assert response.headers["Access-Control-Allow-Origin"] == "https://chat.example.org"
            evil = {"Origin": "https://evil.example"}
            async with http.post(url(h), data=b"<body/>", headers=evil) as response:
                assert response.status == 403
    finally:
        await h.close()


async def test_server_shutdown_answers_held_requests(tmp_path: Path) -> None:
    h = await web_harness(tmp_path, consider_bosh_secure=True)
    await h.user("hugo")
    bosh = BoshClient(url(h))
    try:
        await bosh.login(h.domain, "hugo", PASSWORD)
        held = asyncio.ensure_future(bosh.post())
        await asyncio.sleep(0.1)
        await h.close()
        answer = await asyncio.wait_for(held, 5)
        assert answer.get("type") == "terminate"
    finally:
        await bosh.close()


def _bare(jid: str) -> JID:
    return JID.parse(jid).bare()


async def test_changed_limits_come_from_config(tmp_path: Path) -> None:
    h = await web_harness(tmp_path, bosh_max_wait=5.0, bosh_max_hold=1)
    bosh = BoshClient(url(h))
    try:
        first = await bosh.start(h.domain, wait="30", hold="2")
        assert (first.get("wait"), first.get("hold"), first.get("requests")) == ("5", "1", "2")
    finally:
        await bosh.close()
        await h.close()


def test_payloads_without_their_own_namespace_mean_jabber_client() -> None:
    from appliance.web.bosh import parse_body

    wire = f"<body xmlns='{NS_BOSH}' rid='7'><message to='a@localhost'><body>hi</body></message></body>"
    body = parse_body(wire.encode(), max_size=10_000, max_depth=16)
    assert body.rid() == 7
    [payload] = body.payloads
    assert payload.tag == f"{{{NS_CLIENT}}}message"
    assert payload.findtext(f"{{{NS_CLIENT}}}body") == "hi"
    expected = b'<message xmlns="jabber:client" to="a@localhost"><body>hi</body></message>'
    assert etree.tostring(payload) == expected
