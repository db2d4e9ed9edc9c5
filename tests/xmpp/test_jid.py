"""JID parsing and preparation (RFC 7622)."""

from __future__ import annotations

import copy
import pickle

import precis_i18n
import pytest

from appliance.xmpp.jid import JID, JIDError, prepare_local, prepare_resource

# RFC 7622 §3.5 "Examples of Valid JIDs": (text, local, domain, resource) after preparation.
RFC_VALID = [
    ("juliet@example.com", "juliet", "example.com", None),
    ("juliet@example.com/foo", "juliet", "example.com", "foo"),
    ("juliet@example.com/foo bar", "juliet", "example.com", "foo bar"),
    ("juliet@example.com/foo@bar", "juliet", "example.com", "foo@bar"),
    ("foo\\20bar@example.com", "foo\\20bar", "example.com", None),
    ("fussball@example.com", "fussball", "example.com", None),
    ("fu\u00dfball@example.com", "fu\u00dfball", "example.com", None),
    ("\u03c0@example.com", "\u03c0", "example.com", None),
    ("\u03a3@example.com/foo", "\u03c3", "example.com", "foo"),  # capital sigma is lower-cased
    ("\u03c3@example.com/foo", "\u03c3", "example.com", "foo"),
    ("\u03c2@example.com/foo", "\u03c2", "example.com", "foo"),  # final sigma stays as it is
    ("king@example.com/\u265a", "king", "example.com", "\u265a"),
    ("example.com", None, "example.com", None),
    ("example.com/foobar", None, "example.com", "foobar"),
    ("a.example.com/b@example.net", None, "a.example.com", "b@example.net"),
]

# RFC 7622 §3.5 "Examples of Invalid JIDs", except "juliet@example.com/ foo" (see below).
RFC_INVALID = [
    '"juliet"@example.com',  # quotation marks in the localpart
    "foo bar@example.com",  # space in the localpart
    "@example.com/",  # empty localpart and resourcepart
    "henry\u2163@example.com",  # ROMAN NUMERAL FOUR, a compatibility character
    "\u265a@example.com",  # a symbol in the localpart
    "juliet@",  # no domainpart
    "/foobar",  # no domainpart
]


@pytest.mark.parametrize(("text", "local", "domain", "resource"), RFC_VALID)
def test_rfc7622_valid_examples(text: str, local: str | None, domain: str, resource: str | None) -> None:
    jid = JID.parse(text)
    assert (jid.local, jid.domain, jid.resource) == (local, domain, resource)
    assert JID.parse(str(jid)) == jid  # the prepared form is stable


@pytest.mark.parametrize("text", RFC_INVALID)
def test_rfc7622_invalid_examples(text: str) -> None:
    with pytest.raises(JIDError):
        JID.parse(text)


def test_leading_space_in_resource_is_accepted() -> None:
    """RFC 7622 §3.5 lists "juliet@example.com/ foo" as invalid, yet OpaqueString (the rule it
    mandates for resourceparts) allows spaces anywhere. We follow the rule, as most servers do,
    so addresses other servers accept are not bounced here."""
    assert JID.parse("juliet@example.com/ foo").resource == " foo"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "@",
        "/",
        "juliet@example.com/",
        "@example.com",
        "a@b@example.com",
        "juliet@exa mple.com",
        "juliet@example..com",
        "juliet@.example.com",
        "juliet@example.com..",
        "juliet@-example.com",
        "juliet@example-.com",
        "juliet@exa_mple.com",
        "juliet@\u265a.example",
        "juliet@" + "a" * 64 + ".com",
        "juliet@xn--zz.example",  # undecodable A-label
        "juliet@xn--abc.example",  # an A-label that decodes to ASCII
        "juliet@[::1",
        "juliet@[fe80::1%eth0]",
        "juliet@[not-an-ip]",
        "juliet@256.0.0.1",
        "a:b@example.com",
        "a&b@example.com",
        "a'b@example.com",
        "a<b@example.com",
        "a>b@example.com",
        "juliet@example.com/\x07",  # control character in the resource
        "a\u0000b@example.com",
    ],
)
def test_invalid_jids(text: str) -> None:
    with pytest.raises(JIDError):
        JID.parse(text)


def test_jid_error_is_a_value_error() -> None:
    assert issubclass(JIDError, ValueError)


def test_domain_is_case_folded_and_loses_its_trailing_dot() -> None:
    assert str(JID.parse("Juliet@Example.COM./Balcony")) == "juliet@example.com/Balcony"
    assert JID.parse("EXAMPLE.com.") == JID.parse("example.com")


def test_resource_keeps_its_case() -> None:
    assert JID.parse("juliet@example.com/Balcony") != JID.parse("juliet@example.com/balcony")


def test_internationalized_domains() -> None:
    assert JID.parse("juliet@B\u00dcCHER.example").domain == "b\u00fccher.example"
    assert JID.parse("juliet@xn--bcher-kva.example") == JID.parse("juliet@b\u00fccher.example")
    # Full-width letters and the ideographic full stop map to their plain forms (UTS-46).
    assert JID.parse("juliet@\uff45\uff58\u3002com").domain == "ex.com"


def test_ip_literals() -> None:
    assert JID.parse("juliet@192.0.2.1").domain == "192.0.2.1"
    assert JID.parse("juliet@[2001:DB8:0::1]/r").domain == "[2001:db8::1]"


def test_length_limits_are_in_bytes_after_preparation() -> None:
    assert JID.parse("a" * 1023 + "@example.com").local == "a" * 1023
    with pytest.raises(JIDError):
        JID.parse("a" * 1024 + "@example.com")
    with pytest.raises(JIDError):
        JID.parse("\u00e9" * 512 + "@example.com")  # 1024 bytes of UTF-8
    assert JID.parse("example.com/" + "r" * 1023).resource == "r" * 1023
    with pytest.raises(JIDError):
        JID.parse("example.com/" + "r" * 1024)
    with pytest.raises(JIDError):
        JID.parse("x" * 100_000)


def test_make_prepares_each_part() -> None:
    assert JID.make("Juliet", "Example.com", "Balcony") == JID.parse("juliet@example.com/Balcony")
    assert JID.make(None, "example.com", None) == JID.parse("example.com")
    assert JID("Romeo", "example.net") == JID.parse("romeo@example.net")
    with pytest.raises(JIDError):
        JID.make("", "example.com", None)
    with pytest.raises(JIDError):
        JID.make("juliet", "example.com", "")
    with pytest.raises(JIDError):
        JID.make("ju@liet", "example.com", None)


def test_bare_full_and_with_resource() -> None:
    full = JID.parse("juliet@example.com/balcony")
    bare = full.bare()
    assert str(bare) == "juliet@example.com" and bare.is_bare and not bare.is_full
    assert full.is_full and not full.is_bare
    assert bare.bare() is bare
    assert bare.with_resource("orchard") == JID.parse("juliet@example.com/orchard")
    assert full.with_resource(None) == bare
    assert full.domain_jid() == JID.parse("example.com")
    with pytest.raises(JIDError):
        bare.with_resource("")


def test_a_full_jid_keeps_its_bare_jid() -> None:
    """The router and the message hooks ask for the bare JID several times per stanza: one object."""
    full = JID.make("romeo", "example.net", "orchard")
    assert full.bare() is full.bare()
    assert full.bare() == JID.make("romeo", "example.net") and full.bare().resource is None
    assert pickle.loads(pickle.dumps(full)).bare() == full.bare()


def test_equality_and_hashing_use_the_prepared_form() -> None:
    a = JID.parse("JULIET@example.COM/r")
    b = JID.make("juliet", "EXAMPLE.com", "r")
    assert a == b and hash(a) == hash(b)
    assert len({a, b, a.bare()}) == 2
    assert a != "juliet@example.com/r"


def test_immutable_and_picklable() -> None:
    jid = JID.parse("juliet@example.com/r")
    with pytest.raises(AttributeError):
        jid.local = "romeo"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        jid.other = 1  # type: ignore[attr-defined]
    assert pickle.loads(pickle.dumps(jid)) == jid
    assert copy.deepcopy(jid) == jid
    assert repr(jid) == "JID('juliet@example.com/r')"


def test_parse_is_memoised() -> None:
    assert JID.parse("cache@example.com/x") is JID.parse("cache@example.com/x")


@pytest.mark.parametrize("code", range(0x20, 0x7F))
def test_ascii_fast_paths_agree_with_precis(code: int) -> None:
    """The ASCII shortcuts must give exactly what the PRECIS profiles give."""
    text = f"a{chr(code)}B"
    try:
        expected_local: str | None = precis_i18n.get_profile("UsernameCaseMapped").enforce(text)
        if set(expected_local) & set("\"&'/:<>@ "):
            expected_local = None
    except UnicodeError:
        expected_local = None
    try:
        actual_local: str | None = prepare_local(text)
    except JIDError:
        actual_local = None
    assert actual_local == expected_local
    assert prepare_resource(text) == precis_i18n.get_profile("OpaqueString").enforce(text)
