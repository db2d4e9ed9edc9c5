"""The STUN codec against the test vectors of RFC 5769, and the checks a TURN server relies on."""

from __future__ import annotations

import pytest

from appliance.turn.credentials import RestCredentials, long_term_key
from appliance.turn.stun import (
    Attr,
    Class,
    Message,
    Method,
    StunParseError,
    channel_data,
    frame_length,
    is_channel_data,
    parse,
    parse_channel_data,
)
from appliance.util.turn_rest import rest_credentials

# RFC 5769 §2.1: a request with a short-term credential (the key is the password itself)
REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74"
    "002400046e0001ff80290008932ff9b151263b36000600096576746a3a68367659202020000800149aeaa70cbfd8cb56"
    "781ef2b5b2d3f249c1b571a280280004e57a3bcf")
# RFC 5769 §2.2: its response, with an IPv4 XOR-MAPPED-ADDRESS
RESPONSE = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220002000080001a147e112a643"
    "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d780280004c07d4c96")
# RFC 5769 §2.4: a request with a long-term credential (username and password need SASLprep)
LONG_TERM = bytes.fromhex(
    "000100602112a44278ad3433c6ad72c029da412e00060012e3839ee38388e383aae38383e382afe382b900000015001c"
    "662f2f3439396b39353464364f4c33346f4c394653547679363473410014000b6578616d706c652e6f726700000800"
    "14f67024656dd64a3e02b8e0712e85c9a28ca89666")
PASSWORD = b"VOkJxbRl1RmTxUk/WvJxBt"


def test_rfc5769_request_and_response() -> None:
    request = parse(REQUEST)
    assert (request.method, request.cls) == (Method.BINDING, Class.REQUEST)
    assert request.text(Attr.USERNAME) == "evtj:h6vY"
    assert request.text(Attr.SOFTWARE) == "STUN test client"
    assert request.integrity_ok(PASSWORD)
    assert not request.integrity_ok(b"another password")

    response = parse(RESPONSE)
    assert response.cls == Class.SUCCESS
    assert response.xor_address(Attr.XOR_MAPPED_ADDRESS) == ("192.0.2.1", 32853)
    assert response.integrity_ok(PASSWORD)


def test_rfc5769_long_term_credentials() -> None:
    request = parse(LONG_TERM)
    username = request.text(Attr.USERNAME)
    assert username == "\u30de\u30c8\u30ea\u30c3\u30af\u30b9" and request.text(Attr.REALM) == "example.org"
    assert request.integrity_ok(long_term_key(username, "example.org", "TheMatrIX"))


def test_fingerprint_and_length_are_checked() -> None:
    broken = bytearray(REQUEST)
    broken[30] ^= 0xFF  # inside SOFTWARE: the fingerprint no longer matches
    with pytest.raises(StunParseError):
        parse(bytes(broken))
    with pytest.raises(StunParseError):
        parse(REQUEST[:-4])
    with pytest.raises(StunParseError):
        parse(b"\x40" + REQUEST[1:])  # first bits 01: ChannelData, not STUN


def test_built_messages_round_trip_with_integrity_ipv6_and_unknown_attributes() -> None:
    message = Message(Method.ALLOCATE, Class.SUCCESS)
    message.add_xor_address(Attr.XOR_RELAYED_ADDRESS, ("2001:db8::7", 49170))
    message.add_unsigned(Attr.LIFETIME, 600).add(0x0031, b"?")  # 0x0031: comprehension-required, unknown
    key = long_term_key("1700000000:alice@example.org", "example.org", "pw")
    parsed = parse(message.encode(key))
    assert parsed.integrity_ok(key)
    assert parsed.xor_address(Attr.XOR_RELAYED_ADDRESS) == ("2001:db8::7", 49170)
    assert parsed.unsigned(Attr.LIFETIME) == 600
    assert parsed.unknown_required() == [0x0031]
    assert parsed.method == Method.ALLOCATE and parsed.cls == Class.SUCCESS


def test_channel_data_framing() -> None:
    frame = channel_data(0x4001, b"abcde", pad=True)
    assert len(frame) == 12 and is_channel_data(frame) and frame_length(frame[:4]) == 12
    assert parse_channel_data(frame) == (0x4001, b"abcde")
    assert frame_length(REQUEST[:4]) == len(REQUEST)


def test_rest_credentials_expire_and_bind_the_user() -> None:
    now = [1_000_000.0]
    checker = RestCredentials("secret", "example.org", now=lambda: now[0])
    username, password = rest_credentials("secret", "alice@example.org", now[0] + 60)
    verdict = checker.check(username)
    assert verdict.user == "alice@example.org"
    assert verdict.key == long_term_key(username, "example.org", password)
    now[0] += 61
    assert checker.check(username).key is None  # expired
    assert checker.check("alice@example.org").key is None  # no expiry: not a REST username
    nonce = checker.nonce()
    assert checker.nonce_fresh(nonce)
    now[0] += 601
    assert not checker.nonce_fresh(nonce)
    assert not checker.nonce_fresh(b"00" * 20)
