"""The c2s state table: which top-level element each state accepts, and the stream error otherwise."""

from __future__ import annotations

import pytest
from lxml import etree

from appliance.xmpp import sm
from appliance.xmpp import stream as xs
from appliance.xmpp.errors import StreamError
from appliance.xmpp.ns import NS_CLIENT, NS_SASL, NS_SERVER, NS_SM, NS_STREAM, NS_TLS
from appliance.xmpp.stream import C2SState, expect

SM_ENABLE = f"{{{NS_SM}}}enable"
SASL_SUCCESS = f"{{{NS_SASL}}}success"  # server-to-client only: a client must never send it
UNKNOWN = "{urn:example:nonsense}thing"
SERVER_MESSAGE = f"{{{NS_SERVER}}}message"  # right name, wrong (s2s) namespace
STREAM_FEATURES = f"{{{NS_STREAM}}}features"

KINDS = {
    "starttls": xs.STARTTLS,
    "auth": xs.AUTH,
    "response": xs.RESPONSE,
    "abort": xs.ABORT,
    "message": xs.MESSAGE,
    "presence": xs.PRESENCE,
    "iq": xs.IQ,
    "sm-enable": SM_ENABLE,
    "sm-resume": sm.RESUME,
    "sm-r": sm.REQUEST,
    "authenticate": xs.AUTHENTICATE,
    "sasl2-response": xs.SASL2_RESPONSE,
    "csi": xs.CSI_INACTIVE,
    "sasl-success": SASL_SUCCESS,
    "unknown": UNKNOWN,
    "server-message": SERVER_MESSAGE,
    "stream-features": STREAM_FEATURES,
}

OK = None
NA = "not-authorized"
UST = "unsupported-stanza-type"

# state -> kind -> None (accepted) or the stream error condition. Every cell is spelled out.
TABLE: dict[C2SState, dict[str, str | None]] = {
    C2SState.CONNECTED: {
        "starttls": UST, "auth": UST, "response": UST, "abort": UST,
        "message": NA, "presence": NA, "iq": NA,
        "sm-enable": NA, "sm-resume": NA, "sm-r": NA, "authenticate": UST, "sasl2-response": UST,
        "csi": NA, "sasl-success": UST, "unknown": UST, "server-message": UST, "stream-features": UST,
    },
    C2SState.UNAUTHENTICATED: {
        "starttls": OK, "auth": OK, "response": UST, "abort": OK,  # aborted failure (RFC 6120 §6.4.4)
        "message": NA, "presence": NA, "iq": OK,
        "sm-enable": NA, "sm-resume": NA, "sm-r": NA, "authenticate": OK, "sasl2-response": UST,
        "csi": NA, "sasl-success": UST, "unknown": UST, "server-message": UST, "stream-features": UST,
    },
    C2SState.AUTHENTICATING: {
        "starttls": UST, "auth": UST, "response": OK, "abort": OK,
        "message": NA, "presence": NA, "iq": NA,
        "sm-enable": NA, "sm-resume": NA, "sm-r": NA, "authenticate": UST, "sasl2-response": OK,
        "csi": NA, "sasl-success": UST, "unknown": UST, "server-message": UST, "stream-features": UST,
    },
    C2SState.AUTHENTICATED: {
        "starttls": UST, "auth": UST, "response": UST, "abort": UST,
        "message": NA, "presence": NA, "iq": OK,
        "sm-enable": OK, "sm-resume": OK, "sm-r": NA, "authenticate": UST, "sasl2-response": UST,
        "csi": NA, "sasl-success": UST, "unknown": UST, "server-message": UST, "stream-features": UST,
    },
    C2SState.READY: {
        "starttls": UST, "auth": UST, "response": UST, "abort": UST,
        "message": OK, "presence": OK, "iq": OK,
        "sm-enable": OK, "sm-resume": OK, "sm-r": OK, "authenticate": UST, "sasl2-response": UST,
        "csi": OK, "sasl-success": UST, "unknown": UST, "server-message": UST, "stream-features": UST,
    },
    C2SState.CLOSED: {
        "starttls": UST, "auth": UST, "response": UST, "abort": UST,
        "message": NA, "presence": NA, "iq": NA,
        "sm-enable": NA, "sm-resume": NA, "sm-r": NA, "authenticate": UST, "sasl2-response": UST,
        "csi": NA, "sasl-success": UST, "unknown": UST, "server-message": UST, "stream-features": UST,
    },
}  # fmt: skip

CASES = [(state, kind, outcome) for state, row in TABLE.items() for kind, outcome in row.items()]


def test_the_table_covers_every_state_and_kind() -> None:
    assert set(TABLE) == set(C2SState)
    for row in TABLE.values():
        assert set(row) == set(KINDS)


@pytest.mark.parametrize(("state", "kind", "outcome"), CASES, ids=[f"{s.value}-{k}" for s, k, _ in CASES])
def test_expect(state: C2SState, kind: str, outcome: str | None) -> None:
    if outcome is None:
        expect(state, KINDS[kind])
        return
    with pytest.raises(StreamError) as info:
        expect(state, KINDS[kind])
    assert info.value.condition == outcome


@pytest.mark.parametrize("state", list(C2SState), ids=[s.value for s in C2SState])
def test_registered_extensions_are_treated_like_stanzas(state: C2SState) -> None:
    extension = "{urn:example:extension}thing"
    extensions = frozenset({extension})
    if state is C2SState.READY:
        expect(state, extension, extensions)
    else:
        with pytest.raises(StreamError) as info:
            expect(state, extension, extensions)
        assert info.value.condition == "not-authorized"


def test_the_error_text_names_the_element() -> None:
    with pytest.raises(StreamError) as info:
        expect(C2SState.READY, UNKNOWN)
    assert info.value.text is not None and UNKNOWN in info.value.text


# -- the bytes every transport writes -----------------------------------------------------------


def test_stream_header_is_well_formed_and_quotes_attributes() -> None:
    header = xs.stream_header(from_="exa'mple.net", stream_id="abc<1>", to="romeo@example.net")
    assert header.startswith(b"<?xml version='1.0'?><stream:stream ")
    root = etree.fromstring(header + xs.STREAM_CLOSE)
    assert root.tag == f"{{{NS_STREAM}}}stream"
    assert root.nsmap == {None: NS_CLIENT, "stream": NS_STREAM}
    assert root.get("from") == "exa'mple.net"
    assert root.get("id") == "abc<1>"
    assert root.get("to") == "romeo@example.net"
    assert root.get("version") == "1.0"
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"
    assert "to" not in etree.fromstring(xs.stream_header(from_="a", stream_id="b") + xs.STREAM_CLOSE).attrib


def test_stream_header_without_version_for_a_client_that_sent_none() -> None:
    # RFC 6120 §4.7.5: no 'version' from the client -> none in our response header
    root = etree.fromstring(xs.stream_header(from_="a", stream_id="b", version=None) + xs.STREAM_CLOSE)
    assert "version" not in root.attrib and root.get("id") == "b"


def test_features_carry_starttls_required_and_mechanisms() -> None:
    features = xs.features_element(
        [xs.starttls_feature(True), xs.mechanisms_feature(["SCRAM-SHA-256", "PLAIN"])]
    )
    root = etree.fromstring(xs.stream_header(from_="a", stream_id="b") + features + xs.STREAM_CLOSE)
    (feats,) = list(root)
    assert feats.tag == STREAM_FEATURES
    assert feats.find(f"{{{NS_TLS}}}starttls/{{{NS_TLS}}}required") is not None
    assert [m.text for m in feats.iter(f"{{{NS_SASL}}}mechanism")] == ["SCRAM-SHA-256", "PLAIN"]


def test_sasl_elements() -> None:
    assert xs.sasl_element("success") == b'<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/>'
    assert (
        xs.sasl_element("challenge", b"")
        == b'<challenge xmlns="urn:ietf:params:xml:ns:xmpp-sasl">=</challenge>'
    )
    assert xs.sasl_element("challenge", b"hi") == (
        b'<challenge xmlns="urn:ietf:params:xml:ns:xmpp-sasl">aGk=</challenge>'
    )
    assert xs.sasl_element("failure", None, "encryption-required", "Use STARTTLS") == (
        b'<failure xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><encryption-required/>'
        b"<text>Use STARTTLS</text></failure>"
    )
