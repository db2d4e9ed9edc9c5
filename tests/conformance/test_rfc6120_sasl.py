"""RFC 6120 §6: SASL negotiation, failure conditions (§6.5), abort and retries."""

from __future__ import annotations

import base64
import hashlib
import hmac

from lxml import etree

from tests.conformance.client import NS, XmppStream, q, raw_open, to_string
from tests.conformance.conftest import ServerInfo, xfail_on


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def _auth(s: XmppStream, mechanism: str | None, text: str = "") -> etree._Element:
    mech = f" mechanism='{mechanism}'" if mechanism is not None else ""
    await s.send(f"<auth xmlns='{NS['sasl']}'{mech}>{text}</auth>")
    return await s.expect(lambda e: e.tag in (q("sasl:success"), q("sasl:failure"), q("sasl:challenge")))


def _assert_failure(elem: etree._Element, condition: str) -> None:
    assert elem.tag == q("sasl:failure"), to_string(elem)
    conds = [etree.QName(c).localname for c in elem if etree.QName(c).localname != "text"]
    assert conds == [condition], to_string(elem)


async def _failure_on_fresh_stream(server: ServerInfo, mechanism: str | None, text: str, condition: str) -> None:
    s = await raw_open(server)
    try:
        _assert_failure(await _auth(s, mechanism, text), condition)
    finally:
        await s.abort()


async def test_not_authorized_on_wrong_password(server: ServerInfo) -> None:
    # §6.5.10 not-authorized: "The authentication failed because the initiating entity provided
    # credentials that are not valid".
    await _failure_on_fresh_stream(server, "PLAIN", _b64(b"\0alice\0wrong-password"), "not-authorized")


async def test_not_authorized_on_unknown_user(server: ServerInfo) -> None:
    await _failure_on_fresh_stream(server, "PLAIN", _b64(b"\0nosuchuser\0secret-pass"), "not-authorized")


async def test_invalid_mechanism(server: ServerInfo) -> None:
    # §6.5.6 invalid-mechanism: "The initiating entity did not specify a mechanism, or requested a
    # mechanism that is not supported by the receiving entity."
    await _failure_on_fresh_stream(server, "X-NO-SUCH-MECHANISM", "", "invalid-mechanism")


@xfail_on("ejabberd", reason="RFC 6120 §6.5.6: ejabberd 23.01 answers <auth/> without a mechanism with "
                             "malformed-request instead of invalid-mechanism")
async def test_missing_mechanism_is_invalid_mechanism(server: ServerInfo) -> None:
    await _failure_on_fresh_stream(server, None, _b64(b"\0alice\0secret-pass"), "invalid-mechanism")


@xfail_on("ejabberd", reason="RFC 6120 §6.5.3: ejabberd 23.01 answers data that is not base64 with "
                             "malformed-request instead of incorrect-encoding")
async def test_incorrect_encoding(server: ServerInfo) -> None:
    # §6.5.3 incorrect-encoding: "The data provided by the initiating entity could not be processed because
    # the base 64 encoding is incorrect".
    await _failure_on_fresh_stream(server, "PLAIN", "!!!not*base64!!!", "incorrect-encoding")


@xfail_on("ejabberd", reason="RFC 6120 §6.5.9: ejabberd 23.01 answers a PLAIN message without its NUL "
                             "separators with not-authorized instead of malformed-request")
async def test_malformed_request(server: ServerInfo) -> None:
    # §6.5.9 malformed-request: "The request is malformed (e.g., ... the data sent violates the syntax for
    # the specified SASL mechanism)". PLAIN is [authzid] NUL authcid NUL passwd (RFC 4616 §2).
    await _failure_on_fresh_stream(server, "PLAIN", _b64(b"alice"), "malformed-request")


@xfail_on("ejabberd", reason="RFC 6120 §6.5.7: ejabberd 23.01 (this profile) lets alice's credentials log in "
                             "as bob when PLAIN carries authzid bob@domain")
@xfail_on("prosody", reason="RFC 6120 §6.5.7: Prosody 0.12 ignores a foreign PLAIN authzid and logs alice in")
async def test_foreign_authzid_is_refused(server: ServerInfo) -> None:
    # §6.5.7 invalid-authzid: "The authzid provided by the initiating entity is invalid, either because it
    # is incorrectly formatted or because the initiating entity does not have permissions to authorize
    # that ID". alice may not act as bob.
    await _failure_on_fresh_stream(
        server, "PLAIN", _b64(f"{server.jid('bob')}\0alice\0secret-pass".encode()), "invalid-authzid")


async def test_own_authzid_is_accepted(server: ServerInfo) -> None:
    # §6.3.8: an authzid equal to the identity the credentials prove is no request to act for anyone else.
    s = await raw_open(server)
    try:
        result = await _auth(s, "PLAIN", _b64(f"{server.jid('alice')}\0alice\0secret-pass".encode()))
        assert result.tag == q("sasl:success"), to_string(result)
    finally:
        await s.abort()


async def test_abort_during_exchange(server: ServerInfo) -> None:
    # §6.4.4: "Upon receiving an <abort/> element, the receiving entity MUST return a <failure/> element
    # qualified by the SASL namespace and containing an <aborted/> child element."
    s = await raw_open(server)
    try:
        challenge = await _auth(s, "SCRAM-SHA-1", _b64(b"n,,n=alice,r=conformance0123456789"))
        assert challenge.tag == q("sasl:challenge"), to_string(challenge)
        await s.send(f"<abort xmlns='{NS['sasl']}'/>")
        _assert_failure(await s.expect(), "aborted")
        # the stream stays usable: §6.4.5 lets the client try again
        assert (await _auth(s, "PLAIN", _b64(b"\0alice\0secret-pass"))).tag == q("sasl:success")
    finally:
        await s.abort()


async def test_abort_without_exchange(server: ServerInfo) -> None:
    # §6.4.4: "The initiating entity can abort the handshake at any time by sending an <abort/> element"
    # and the receiving entity MUST answer <failure><aborted/></failure> (not a stream error).
    s = await raw_open(server)
    try:
        await s.send(f"<abort xmlns='{NS['sasl']}'/>")
        _assert_failure(await s.expect(), "aborted")
        assert (await _auth(s, "PLAIN", _b64(b"\0alice\0secret-pass"))).tag == q("sasl:success")
    finally:
        await s.abort()


async def test_retries_after_failure(server: ServerInfo) -> None:
    # §6.4.5: "the receiving entity SHOULD allow a configurable but reasonable number of retries (at least 2
    # and no more than 5)": two failures, then the right password on the same stream.
    s = await raw_open(server)
    try:
        for _ in range(2):
            _assert_failure(await _auth(s, "PLAIN", _b64(b"\0alice\0wrong-password")), "not-authorized")
        assert (await _auth(s, "PLAIN", _b64(b"\0alice\0secret-pass"))).tag == q("sasl:success")
    finally:
        await s.abort()


async def test_success_then_restart(server: ServerInfo) -> None:
    # §6.4.6: on <success/> both sides discard the old stream; the client sends a new header and the server
    # answers with a new header and features.
    s = await raw_open(server)
    try:
        assert (await _auth(s, "PLAIN", _b64(b"\0alice\0secret-pass"))).tag == q("sasl:success")
        features = await s.open_stream()
        assert features.find(q("bind:bind")) is not None
    finally:
        await s.abort()


async def test_scram_success_carries_server_signature(server: ServerInfo) -> None:
    # §6.4.6 / §6.3.10: additional data a mechanism sends with success (SCRAM's server-final-message,
    # RFC 5802 §5.1 "v=") is carried in <success/>; the client checks the server's signature.
    nonce = base64.b64encode(hashlib.sha256(b"conformance").digest()[:18]).decode()
    bare = f"n=alice,r={nonce}"
    s = await raw_open(server)
    try:
        challenge = await _auth(s, "SCRAM-SHA-1", _b64(f"n,,{bare}".encode()))
        assert challenge.tag == q("sasl:challenge"), to_string(challenge)
        first = base64.b64decode(challenge.text or "").decode()
        fields = dict(item.split("=", 1) for item in first.split(","))
        assert fields["r"].startswith(nonce)
        salted = hashlib.pbkdf2_hmac("sha1", server.password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
        final_bare = f"c=biws,r={fields['r']}"
        auth_message = f"{bare},{first},{final_bare}".encode()
        client_key = hmac.new(salted, b"Client Key", "sha1").digest()
        signature = hmac.new(hashlib.sha1(client_key).digest(), auth_message, "sha1").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        await s.send(f"<response xmlns='{NS['sasl']}'>{_b64(f'{final_bare},p={_b64(proof)}'.encode())}</response>")
        success = await s.expect(lambda e: e.tag in (q("sasl:success"), q("sasl:failure"), q("sasl:challenge")))
        assert success.tag == q("sasl:success"), to_string(success)
        server_key = hmac.new(salted, b"Server Key", "sha1").digest()
        expected = "v=" + _b64(hmac.new(server_key, auth_message, "sha1").digest())
        assert base64.b64decode(success.text or "").decode() == expected
    finally:
        await s.abort()
