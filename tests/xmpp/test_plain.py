"""SASL PLAIN message parsing (RFC 4616) and the SASL failure element."""

from __future__ import annotations

import pytest
from lxml import etree

from appliance.xmpp.ns import NS_SASL
from appliance.xmpp.sasl import SaslFailure
from appliance.xmpp.sasl.plain import MAX_AUTHCID_BYTES, MAX_PASSWORD_BYTES, parse


def test_rfc4616_examples() -> None:
    assert parse(b"\x00tim\x00tanstaaftanstaaf") == ("", "tim", "tanstaaftanstaaf")
    assert parse(b"Ursel\x00Kurt\x00xipj3plmq") == ("Ursel", "Kurt", "xipj3plmq")


def test_utf8_fields_and_spaces_survive() -> None:
    data = "juliet@example.com\x00jüliet\x00pass wörd ".encode()
    assert parse(data) == ("juliet@example.com", "jüliet", "pass wörd ")


def test_longest_fields_are_accepted() -> None:
    authcid, password = "a" * MAX_AUTHCID_BYTES, "p" * MAX_PASSWORD_BYTES
    assert parse(f"\x00{authcid}\x00{password}".encode()) == ("", authcid, password)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"tim",
        b"\x00tim",
        b"\x00tim\x00",  # empty password
        b"\x00\x00secret",  # empty authcid
        b"\x00tim\x00secret\x00",  # a fourth field
        b"a\x00b\x00c\x00d",
        b"\x00tim\x00\xff\xfe",  # not UTF-8
        b"\x00\xc3\x00secret",  # truncated UTF-8 sequence
        b"\x00" + b"a" * (MAX_AUTHCID_BYTES + 1) + b"\x00secret",
        b"\x00tim\x00" + b"p" * (MAX_PASSWORD_BYTES + 1),
        b"z" * 4000 + b"\x00tim\x00secret",
    ],
)
def test_malformed_messages(data: bytes) -> None:
    with pytest.raises(SaslFailure) as failure:
        parse(data)
    assert failure.value.condition == "malformed-request"


def test_failure_element() -> None:
    element = SaslFailure("not-authorized", "Invalid username or password").to_element()
    assert etree.tostring(element) == (
        b'<failure xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><not-authorized/>'
        b'<text xml:lang="en">Invalid username or password</text></failure>'
    )
    bare = SaslFailure("aborted").to_element()
    assert [child.tag for child in bare] == [f"{{{NS_SASL}}}aborted"]


def test_unknown_failure_condition_is_refused() -> None:
    with pytest.raises(ValueError):
        SaslFailure("bad-password")
