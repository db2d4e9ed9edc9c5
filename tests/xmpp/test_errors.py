"""Stanza and stream errors: defaults, rendering, replies and parsing."""

from __future__ import annotations

import pytest
from lxml import etree

from appliance.xmpp.errors import (
    STANZA_CONDITIONS,
    STREAM_CONDITIONS,
    StanzaError,
    StreamError,
    error_reply,
)
from appliance.xmpp.ns import NS_CLIENT, NS_SERVER, NS_STANZAS, NS_STREAM, NS_STREAMS


def xml(text: str) -> etree._Element:
    return etree.fromstring(text)


@pytest.mark.parametrize(("condition", "default_type"), sorted(STANZA_CONDITIONS.items()))
def test_each_stanza_condition_has_a_constructor_with_its_default_type(
    condition: str, default_type: str
) -> None:
    err = getattr(StanzaError, condition.replace("-", "_"))("why")
    assert (err.condition, err.type, err.text) == (condition, default_type, "why")
    assert getattr(StanzaError, condition.replace("-", "_"))(type="wait").type == "wait"


def test_rfc_default_types_spot_check() -> None:
    assert StanzaError.bad_request().type == "modify"
    assert StanzaError.forbidden().type == "auth"
    assert StanzaError.service_unavailable().type == "cancel"
    assert StanzaError.recipient_unavailable().type == "wait"
    assert StanzaError.item_not_found().type == "cancel"


def test_unknown_condition_or_type_is_refused() -> None:
    with pytest.raises(ValueError):
        StanzaError("payment-required")
    with pytest.raises(ValueError):
        StanzaError.bad_request(type="later")


def test_to_element_renders_condition_text_and_app_element() -> None:
    app = etree.Element("{urn:xmpp:blocking:errors}blocked")
    err = StanzaError.not_acceptable("You blocked them", app_element=app)
    assert etree.tostring(err.to_element()) == (
        b'<error xmlns="jabber:client" type="modify">'
        b'<not-acceptable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>'
        b'<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas" xml:lang="en">You blocked them</text>'
        b'<blocked xmlns="urn:xmpp:blocking:errors"/></error>'
    )


def test_text_with_characters_xml_cannot_carry_still_renders() -> None:
    err = StanzaError.bad_request("bad\x00 <input> & \x1b")
    text = err.to_element().find(f"{{{NS_STANZAS}}}text")
    assert text is not None and text.text == "bad <input> & "


def test_gone_carries_the_new_address() -> None:
    err = StanzaError.gone(new_address="xmpp:romeo@afterlife.example.net")
    gone = err.to_element().find(f"{{{NS_STANZAS}}}gone")
    assert gone is not None and gone.text == "xmpp:romeo@afterlife.example.net"


def test_error_reply_swaps_addresses_and_copies_children() -> None:
    iq = xml(
        "<iq xmlns='jabber:client' id='b1' type='set' "
        "from='juliet@im.example.com/balcony' to='im.example.com'>"
        "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>balcony</resource></bind></iq>"
    )
    reply = error_reply(iq, StanzaError.conflict())
    assert etree.tostring(reply) == (
        b'<iq xmlns="jabber:client" id="b1" to="juliet@im.example.com/balcony" from="im.example.com" '
        b'type="error"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>balcony</resource></bind>'
        b'<error type="cancel"><conflict xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>'
    )
    assert iq.get("type") == "set" and len(iq) == 1  # the original is untouched


def test_error_reply_keeps_the_stanza_namespace() -> None:
    message = xml("<message xmlns='jabber:server' from='a@x' to='b@y' id='m1'><body>hi</body></message>")
    reply = error_reply(message, StanzaError.service_unavailable())
    assert reply.tag == f"{{{NS_SERVER}}}message"
    error = reply.find(f"{{{NS_SERVER}}}error")
    assert error is not None and error.get("type") == "cancel"
    assert reply.findtext(f"{{{NS_SERVER}}}body") == "hi"
    assert (reply.get("to"), reply.get("from")) == ("a@x", "b@y")


def test_error_reply_without_addresses() -> None:
    presence = xml("<presence xmlns='jabber:client'/>")
    reply = error_reply(presence, StanzaError.not_allowed())
    assert reply.get("to") is None and reply.get("from") is None and reply.get("id") is None
    assert reply.get("type") == "error"


def test_error_reply_to_an_error_is_refused() -> None:
    with pytest.raises(ValueError):
        error_reply(xml("<message xmlns='jabber:client' type='error'/>"), StanzaError.bad_request())


def test_from_element_parses_a_received_error() -> None:
    error = xml(
        "<error xmlns='jabber:client' type='modify' by='example.net'>"
        "<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Too fast</text>"
        "<too-many-subscriptions xmlns='http://jabber.org/protocol/pubsub#errors'/></error>"
    )
    err = StanzaError.from_element(error)
    assert (err.condition, err.type, err.text, err.by) == (
        "policy-violation",
        "modify",
        "Too fast",
        "example.net",
    )
    assert err.app_element is not None
    assert err.app_element.tag == "{http://jabber.org/protocol/pubsub#errors}too-many-subscriptions"


def test_from_element_tolerates_garbage() -> None:
    err = StanzaError.from_element(xml("<error type='bogus'><nonsense xmlns='urn:x'/></error>"))
    assert (err.condition, err.type) == ("undefined-condition", "cancel")
    assert err.app_element is not None


def test_round_trip_through_xml() -> None:
    original = StanzaError.redirect("moved", new_address="xmpp:room@conference.example.org")
    parsed = StanzaError.from_element(original.to_element())
    assert (parsed.condition, parsed.type, parsed.text, parsed.new_address) == (
        "redirect",
        "modify",
        "moved",
        "xmpp:room@conference.example.org",
    )


# -- stream errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("condition", sorted(STREAM_CONDITIONS - {"see-other-host"}))
def test_each_stream_condition_has_a_constructor(condition: str) -> None:
    err = getattr(StreamError, condition.replace("-", "_"))()
    assert err.condition == condition
    assert err.to_bytes() == f"<stream:error><{condition} xmlns='{NS_STREAMS}'/></stream:error>".encode()


def test_stream_error_text_is_escaped() -> None:
    err = StreamError.policy_violation("a < b & c > d\x00")
    assert err.to_bytes() == (
        b"<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        b"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>a &lt; b &amp; c &gt; d</text>"
        b"</stream:error>"
    )


def test_stream_error_parses_inside_a_stream_header() -> None:
    """The bytes are well-formed once the stream header binds the 'stream' prefix."""
    err = StreamError.see_other_host("[2001:db8::1]:5222", "Moved")
    document = f"<stream:stream xmlns:stream='{NS_STREAM}' xmlns='{NS_CLIENT}'>".encode()
    document += err.to_bytes() + b"</stream:stream>"
    error = xml(document.decode())[0]
    assert error.tag == f"{{{NS_STREAM}}}error"
    parsed = StreamError.from_element(error)
    assert (parsed.condition, parsed.text, parsed.other_host) == (
        "see-other-host",
        "Moved",
        "[2001:db8::1]:5222",
    )


def test_stream_error_from_unknown_condition() -> None:
    error = xml(f"<error xmlns='{NS_STREAM}'><whatever xmlns='urn:x'/></error>")
    assert StreamError.from_element(error).condition == "undefined-condition"


def test_unknown_stream_condition_is_refused() -> None:
    with pytest.raises(ValueError):
        StreamError("not-a-condition")
