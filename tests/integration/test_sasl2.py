"""SASL2 (XEP-0388) with Bind 2 (XEP-0386), inline stream management and FAST (XEP-0484), channel-binding
advertisement (XEP-0440) and SCRAM downgrade protection (XEP-0474), as raw XML over a real TLS stream.
The SCRAM and HT client sides are written here from the specifications, independently of the server's."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import uuid
from typing import Any

import pytest
from lxml import etree

from appliance.core.authn import FastTokens
from appliance.xmpp.jid import JID
from appliance.xmpp.ns import NS_BIND2, NS_CARBONS, NS_CLIENT, NS_FAST, NS_PING, NS_SASL, NS_SASL2, NS_SASL_CB, NS_SM
from tests.integration.harness import PASSWORD, Harness
from tests.integration.test_hostile import RawClient

S2 = f"{{{NS_SASL2}}}"
B2 = f"{{{NS_BIND2}}}"
FAST = f"{{{NS_FAST}}}"
SM = f"{{{NS_SM}}}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class ScramClient:
    """SCRAM-SHA-256 (RFC 5802/7677) client side, checking XEP-0474's 'h' against what we were offered."""

    def __init__(self, user: str, password: str, binding: tuple[str, bytes] | None = None) -> None:
        """`binding`: the channel binding (RFC 5056 name, data) for SCRAM-SHA-256-PLUS."""
        self.user = user
        self.password = password
        self.nonce = secrets.token_hex(12)
        self.gs2 = "n,," if binding is None else f"p={binding[0]},,"
        self.binding_data = b"" if binding is None else binding[1]
        self.first_bare = f"n={user},r={self.nonce}"
        self.server_signature = b""

    def first(self) -> bytes:
        return (self.gs2 + self.first_bare).encode()

    def final(self, server_first: bytes, mechanisms: list[str], bindings: list[str]) -> bytes:
        text = server_first.decode()
        attrs = dict(part.split("=", 1) for part in text.split(","))
        expected = "\x1e".join(sorted(mechanisms)) + "\x1f" + "\x1e".join(sorted(bindings))
        assert attrs["h"] == b64(hashlib.sha256(expected.encode()).digest()), "downgrade protection hash"
        assert attrs["r"].startswith(self.nonce)
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c={b64(self.gs2.encode() + self.binding_data)},r={attrs['r']}"
        auth_message = f"{self.first_bare},{text},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        self.server_signature = hmac.digest(server_key, auth_message, "sha256")
        return f"{without_proof},p={b64(proof)}".encode()


def authenticate(mechanism: str, initial: bytes, agent: str, *inline: str) -> str:
    return (
        f"<authenticate xmlns='{NS_SASL2}' mechanism='{mechanism}'>"
        f"<initial-response>{b64(initial)}</initial-response>"
        f"<user-agent id='{agent}'><software>Parlour tests</software><device>CI</device></user-agent>"
        + "".join(inline) + "</authenticate>"
    )


BIND_WITH_SM = f"<bind xmlns='{NS_BIND2}'><tag>tests</tag><enable xmlns='{NS_SM}' resume='true'/></bind>"


async def tls_features(harness: Harness) -> tuple[RawClient, etree._Element]:
    raw = await RawClient.connect(harness)
    await raw.open()
    features = await raw.starttls(harness)
    return raw, features


def offered(features: etree._Element) -> tuple[list[str], list[str]]:
    auth = features.find(f"{S2}authentication")
    assert auth is not None, etree.tostring(features)
    mechanisms = [m.text or "" for m in auth.findall(f"{S2}mechanism")]
    cb = features.find(f"{{{NS_SASL_CB}}}sasl-channel-binding")
    assert cb is not None, etree.tostring(features)
    return mechanisms, [c.get("type", "") for c in cb]


async def scram_login(harness: Harness, agent: str, *inline: str) -> tuple[RawClient, etree._Element]:
    """SASL2 SCRAM-SHA-256 up to <success/>; returns the client and the success element."""
    raw, features = await tls_features(harness)
    mechanisms, bindings = offered(features)
    scram = ScramClient("alice", PASSWORD)
    await raw.send(authenticate("SCRAM-SHA-256", scram.first(), agent, *inline))
    challenge = await raw.element()
    assert challenge.tag == f"{S2}challenge", etree.tostring(challenge)
    final = scram.final(base64.b64decode(challenge.text or ""), mechanisms, bindings)
    await raw.send(f"<response xmlns='{NS_SASL2}'>{b64(final)}</response>")
    success = await raw.element()
    assert success.tag == f"{S2}success", etree.tostring(success)
    additional = base64.b64decode(success.findtext(f"{S2}additional-data") or "")
    assert additional == b"v=" + b64(scram.server_signature).encode()
    return raw, success


async def ping(raw: RawClient) -> None:
    await raw.send(f"<iq xmlns='{NS_CLIENT}' type='get' id='p1'><ping xmlns='{NS_PING}'/></iq>")
    while True:
        reply = await raw.element()
        if reply.get("id") == "p1":
            assert reply.get("type") == "result", etree.tostring(reply)
            return


async def test_features_offer_sasl2_bind2_fast_and_channel_binding_types(harness: Harness) -> None:
    raw, features = await tls_features(harness)
    try:
        mechanisms, bindings = offered(features)
        assert "SCRAM-SHA-256" in mechanisms and "SCRAM-SHA-256-PLUS" in mechanisms
        assert "tls-server-end-point" in bindings
        inline = features.find(f"{S2}authentication/{S2}inline")
        assert inline is not None
        assert inline.find(f"{SM}sm") is not None
        bind_vars = [f.get("var") for f in inline.iterfind(f"{B2}bind/{B2}inline/{B2}feature")]
        assert NS_SM in bind_vars
        fast = [m.text for m in inline.iterfind(f"{FAST}fast/{FAST}mechanism")]
        assert "HT-SHA-256-NONE" in fast and "HT-SHA-256-ENDP" in fast
    finally:
        await raw.close()


async def test_scram_with_bind2_inline_stream_management_then_fast_token_login(harness: Harness) -> None:
    await harness.user("alice")
    agent = str(uuid.uuid4())
    request = f"<request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-NONE'/>"
    raw, success = await scram_login(harness, agent, BIND_WITH_SM, request)
    try:
        jid = success.findtext(f"{S2}authorization-identifier") or ""
        assert jid.startswith("alice@localhost/tests/"), jid  # client tag + server suffix
        enabled = success.find(f"{B2}bound/{SM}enabled")
        assert enabled is not None and enabled.get("resume") == "true", etree.tostring(success)
        token = success.find(f"{FAST}token")
        assert token is not None and token.get("token") and token.get("expiry"), etree.tostring(success)
        features = await raw.element()  # no stream restart: features follow at once
        assert etree.QName(features).localname == "features"
        await ping(raw)  # bound: stanzas flow
    finally:
        await raw.close()

    # A new connection logs in with the token, one round trip, and gets the same resource back.
    fast_raw, _features = await tls_features(harness)
    try:
        secret = (token.get("token") or "").encode()
        proof = hmac.digest(secret, b"Initiator", "sha256")
        await fast_raw.send(authenticate("HT-SHA-256-NONE", b"alice\0" + proof, agent, f"<fast xmlns='{NS_FAST}'/>",
                                         f"<bind xmlns='{NS_BIND2}'><tag>tests</tag></bind>"))
        answer = await fast_raw.element()
        assert answer.tag == f"{S2}success", etree.tostring(answer)
        server_proof = base64.b64decode(answer.findtext(f"{S2}additional-data") or "")
        assert server_proof == hmac.digest(secret, b"Responder", "sha256")
        assert answer.findtext(f"{S2}authorization-identifier") == jid
        await fast_raw.element()
        await ping(fast_raw)
    finally:
        await fast_raw.close()


async def test_a_wrong_fast_token_fails(harness: Harness) -> None:
    await harness.user("alice")
    agent = str(uuid.uuid4())
    raw, _success = await scram_login(harness, agent, f"<request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-NONE'/>")
    await raw.close()
    bad, _features = await tls_features(harness)
    try:
        proof = hmac.digest(b"not the token", b"Initiator", "sha256")
        await bad.send(authenticate("HT-SHA-256-NONE", b"alice\0" + proof, agent, f"<fast xmlns='{NS_FAST}'/>"))
        failure = await bad.element()
        assert failure.tag == f"{S2}failure", etree.tostring(failure)
        assert failure.find(f"{{{NS_SASL}}}not-authorized") is not None
    finally:
        await bad.close()


async def test_inline_resumption_through_sasl2(harness: Harness) -> None:
    await harness.user("alice")
    bob = await harness.client(await harness.user("bob"))
    agent = str(uuid.uuid4())
    raw, success = await scram_login(harness, agent, BIND_WITH_SM)
    jid = success.findtext(f"{S2}authorization-identifier") or ""
    enabled = success.find(f"{B2}bound/{SM}enabled")
    assert enabled is not None
    previd = enabled.get("id", "")
    await raw.element()  # features
    await raw.send(f"<presence xmlns='{NS_CLIENT}'/>")
    raw.writer.transport.abort()  # the connection dies; nothing was received, so h=0
    bob.send_message(mto=jid, mbody="while you were away", mtype="chat")

    again, resumed_success = await scram_login(harness, agent, f"<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>",
                                                BIND_WITH_SM)
    try:
        resumed = resumed_success.find(f"{SM}resumed")
        assert resumed is not None, etree.tostring(resumed_success)
        assert resumed_success.find(f"{B2}bound") is None  # resumption replaces binding
        assert resumed_success.findtext(f"{S2}authorization-identifier") == jid
        while True:
            element = await again.element()
            if element.tag == f"{{{NS_CLIENT}}}message":
                assert element.findtext(f"{{{NS_CLIENT}}}body") == "while you were away"
                break
    finally:
        await again.close()


async def test_bind2_enables_carbons_inline(harness: Harness) -> None:
    await harness.user("alice")
    bob = await harness.client(await harness.user("bob"))
    desktop = await harness.client("alice@localhost", resource="desktop")
    raw, features = await tls_features(harness)
    await raw.close()
    inline = features.find(f"{S2}authentication/{S2}inline/{B2}bind/{B2}inline")
    assert inline is not None and NS_CARBONS in [f.get("var") for f in inline]
    bind = f"<bind xmlns='{NS_BIND2}'><tag>tests</tag><enable xmlns='{NS_CARBONS}'/></bind>"
    phone, _success = await scram_login(harness, str(uuid.uuid4()), bind)
    try:
        await phone.element()  # features
        bob.send_message(mto=str(desktop.boundjid), mbody="to the desktop", mtype="chat")
        while True:
            element = await phone.element()
            received = element.find(f"{{{NS_CARBONS}}}received")
            if received is not None:
                assert b"to the desktop" in etree.tostring(received)
                break
    finally:
        await phone.close()


async def test_a_client_gone_while_its_fast_token_is_issued_leaves_no_session_bound(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """SASL2 success is composed across awaits (the FAST token is written to storage): a connection that
    closes meanwhile must not end up bound in the session directory, nor trip over its own end."""
    await harness.user("alice")
    assert harness.server.core is not None
    services = harness.server.core.c2s
    assert services.fast is not None
    issuing, release = asyncio.Event(), asyncio.Event()

    class SlowTokens(FastTokens):
        """The real token store, answering once the test lets it."""

        async def issue(self, *args: Any) -> Any:
            issuing.set()
            await release.wait()
            return await super().issue(*args)

    services.fast = SlowTokens(services.fast.kv)
    request = f"<request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-NONE'/>"
    raw, features = await tls_features(harness)
    try:
        mechanisms, bindings = offered(features)
        scram = ScramClient("alice", PASSWORD)
        await raw.send(authenticate("SCRAM-SHA-256", scram.first(), str(uuid.uuid4()), BIND_WITH_SM, request))
        challenge = await raw.element()
        final = scram.final(base64.b64decode(challenge.text or ""), mechanisms, bindings)
        await raw.send(f"<response xmlns='{NS_SASL2}'>{b64(final)}</response>")
        await asyncio.wait_for(issuing.wait(), 10)
    finally:
        await raw.close()
    alice = JID.parse(f"alice@{harness.domain}")
    for _ in range(100):  # until the server has seen the connection go
        if not any(s.jid is None or s.jid.bare() == alice for s in services.connections):
            break
        await asyncio.sleep(0.02)
    release.set()
    await asyncio.sleep(0.2)  # the success is composed after the close
    print("DEBUG", harness.server.sessions.resources(alice), issuing.is_set(), list(services.connections))
    assert harness.server.sessions.resources(alice) == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
