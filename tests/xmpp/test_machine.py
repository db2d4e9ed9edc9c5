"""The c2s stream machine fed whole recorded transcripts one byte at a time, with no sockets: STARTTLS,
SCRAM (RFC 7677's exchange), bind, SASL2 with Bind 2, stream management with resumption, and errors.
Each line of the expected traces is one effect the machine asked its driver for."""

from __future__ import annotations

import base64

import pytest
from lxml import etree

from appliance.xmpp import effects as fx
from appliance.xmpp.machine import C2S, LocalProtocolError, Offer, State, StreamMachine
from appliance.xmpp.parser import Stanza, StreamOpen
from tests.xmpp.machine_driver import HOST, Driver

HEADER = (
    b"<?xml version='1.0'?><stream:stream to='example.net' from='user@example.net' version='1.0' "
    b"xml:lang='en' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
)


def b64(text: str) -> bytes:
    return base64.b64encode(text.encode())


CLIENT_FIRST = b64("n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
CLIENT_FINAL = b64(
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
WRONG_FINAL = b64(
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAAAapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SASL = b"urn:ietf:params:xml:ns:xmpp-sasl"
BIND = b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>"
MESSAGE = b"<message to='juliet@example.net' type='chat' id='m1'><body>Hi</body></message>"


def login(driver: Driver) -> None:
    """STARTTLS, SCRAM-SHA-256 and a bound resource, as the first transcript checks."""
    driver.feed(HEADER + b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", bytewise=False)
    driver.feed(HEADER + b"<auth xmlns='" + SASL + b"' mechanism='SCRAM-SHA-256'>" + CLIENT_FIRST + b"</auth>",
                bytewise=False)
    driver.feed(b"<response xmlns='" + SASL + b"'>" + CLIENT_FINAL + b"</response>", bytewise=False)
    driver.feed(HEADER + BIND, bytewise=False)
    assert driver.machine.state is State.READY


def test_starttls_scram_bind_message_close() -> None:
    client = Driver()
    assert client.feed(HEADER) == ["open example.net id2", "features(starttls)"]
    # Whatever is pipelined after <starttls/> is dropped (RFC 6120 §5.4.3.3); one chunk, as a client would.
    assert client.feed(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><presence/>", bytewise=False) == [
        "proceed", "starttls",
    ]
    assert client.feed(HEADER) == ["open example.net id3", "features(mechanisms,authentication)"]
    auth = b"<auth xmlns='" + SASL + b"' mechanism='SCRAM-SHA-256'>" + CLIENT_FIRST + b"</auth>"
    assert client.feed(auth) == ["authenticate SCRAM-SHA-256", "challenge"]
    assert client.machine.state is State.AUTHENTICATING
    response = b"<response xmlns='" + SASL + b"'>" + CLIENT_FINAL + b"</response>"
    assert client.feed(response) == ["sasl-response", "success", "restart"]
    assert client.machine.state is State.AUTHENTICATED and client.machine.username == "user"
    assert client.feed(HEADER) == ["open example.net id4", "features(bind,sm,csi)"]
    assert client.feed(BIND) == ["bind user@example.net/phone", "iq[result](bind)", "bound"]
    assert client.feed(MESSAGE) == ["route message[chat](body)"]
    routed = client.routed[0]
    assert routed.get("from") == "user@example.net/phone" and routed.get("to") == "juliet@example.net"
    assert client.feed(b"</stream:stream>") == ["close", "closed ready"]
    assert client.machine.state is State.CLOSED


def test_the_server_final_message_carries_the_scram_signature() -> None:
    client = Driver(secure=True)
    client.feed(HEADER + b"<auth xmlns='" + SASL + b"' mechanism='SCRAM-SHA-256'>" + CLIENT_FIRST + b"</auth>")
    writes: list[bytes] = []
    client.machine.receive([Stanza(etree.fromstring(
        b"<response xmlns='" + SASL + b"'>" + CLIENT_FINAL + b"</response>"))])
    while (effect := client.machine.next_effect()) is not None:
        if isinstance(effect, fx.SaslResponse):
            client._respond(effect)
        elif isinstance(effect, fx.Write):
            writes.append(effect.data)
    success = etree.fromstring(writes[0])
    assert base64.b64decode(success.text or "") == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_three_failed_logins_end_the_stream() -> None:
    client = Driver(secure=True)
    client.feed(HEADER)
    bad_plain = b"<auth xmlns='" + SASL + b"' mechanism='PLAIN'>" + b64("\0user\0wrong") + b"</auth>"
    assert client.feed(bad_plain) == ["authenticate PLAIN", "failure(not-authorized)"]
    assert client.machine.state is State.UNAUTHENTICATED
    assert client.feed(b"<auth xmlns='" + SASL + b"' mechanism='SCRAM-SHA-256'>" + CLIENT_FIRST + b"</auth>"
                       + b"<response xmlns='" + SASL + b"'>" + WRONG_FINAL + b"</response>") == [
        "authenticate SCRAM-SHA-256", "challenge", "sasl-response", "failure(not-authorized)",
    ]
    assert client.feed(b"<auth xmlns='" + SASL + b"' mechanism='PLAIN'>!!notbase64</auth>") == [
        "authenticate PLAIN", "failure(incorrect-encoding)", "stream-error policy-violation", "close", "closed",
    ]


def test_mechanism_checks_abort_and_sasl_before_tls() -> None:
    client = Driver()
    client.feed(HEADER)
    assert client.feed(b"<auth xmlns='" + SASL + b"' mechanism='PLAIN'>AHVzZXIAcGVuY2ls</auth>") == [
        "failure(encryption-required,text)"
    ]
    client = Driver(secure=True)
    client.feed(HEADER)
    assert client.feed(b"<auth xmlns='" + SASL + b"' mechanism='DIGEST-MD5'/>") == ["failure(invalid-mechanism)"]
    assert client.feed(b"<abort xmlns='" + SASL + b"'/>") == ["failure(aborted)"]
    client.feed(b"<auth xmlns='" + SASL + b"' mechanism='SCRAM-SHA-256'>" + CLIENT_FIRST + b"</auth>")
    assert client.feed(b"<abort xmlns='" + SASL + b"'/>") == ["failure(aborted)"]
    assert client.machine.state is State.UNAUTHENTICATED
    # Aborts are not failed attempts: the stream is still open and a login still works.
    assert client.feed(b"<auth xmlns='" + SASL + b"' mechanism='PLAIN'>AHVzZXIAcGVuY2ls</auth>") == [
        "authenticate PLAIN", "success", "restart",
    ]


SASL2_AUTH = (
    b"<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'>"
    b"<initial-response>AHVzZXIAcGVuY2ls</initial-response>"
    b"<user-agent id='d4565fa7-4d72-4749-b3d3-740edbf87770'><software>Test</software></user-agent>"
    b"<bind xmlns='urn:xmpp:bind:0'><tag>laptop</tag><enable xmlns='urn:xmpp:sm:3' resume='true'/></bind>"
    b"</authenticate>"
)


def test_sasl2_with_bind2_and_inline_stream_management() -> None:
    client = Driver(secure=True)
    assert client.feed(HEADER) == ["open example.net id2", "features(mechanisms,authentication)"]
    assert client.feed(SASL2_AUTH) == [
        "authenticate PLAIN", "sasl2-success", "sm-enabled resumable", "success(bound)", "features(csi)", "bound",
    ]
    m = client.machine
    assert m.state is State.READY and str(m.jid) == "user@example.net/laptop"
    assert m.user_agent == "d4565fa7-4d72-4749-b3d3-740edbf87770"
    assert m.sm is not None and m.sm.resumable
    assert client.feed(MESSAGE + b"<r xmlns='urn:xmpp:sm:3'/>") == ["route message[chat](body)", "a"]
    assert m.handled == 1
    assert client.feed(b"<inactive xmlns='urn:xmpp:csi:0'/>") == ["csi inactive"]


SASL2 = b"urn:xmpp:sasl:2"


def test_sasl2_scram_challenges_and_failures_are_written_in_the_sasl2_namespace() -> None:
    client = Driver(secure=True)
    client.feed(HEADER)
    start = (b"<authenticate xmlns='" + SASL2 + b"' mechanism='SCRAM-SHA-256'><initial-response>" + CLIENT_FIRST
             + b"</initial-response></authenticate>")
    assert client.feed(start) == ["authenticate SCRAM-SHA-256", "challenge"]
    assert client.feed(b"<response xmlns='" + SASL2 + b"'>" + WRONG_FINAL + b"</response>") == [
        "sasl-response", "failure(not-authorized)",
    ]
    assert client.machine.state is State.UNAUTHENTICATED
    # An RFC 6120 <response/> to a SASL2 challenge ends that exchange as aborted, in SASL2's namespace.
    client.feed(start)
    assert client.feed(b"<response xmlns='" + SASL + b"'>" + CLIENT_FINAL + b"</response>") == ["failure(aborted)"]
    client.feed(start)
    assert client.feed(b"<response xmlns='" + SASL2 + b"'>" + CLIENT_FINAL + b"</response>") == [
        "sasl-response", "sasl2-success", "success(additional-data)", "features(bind,sm,csi)",
    ]
    assert client.machine.state is State.AUTHENTICATED  # no Bind 2 asked: RFC 6120 binding follows


def test_sasl2_answers_carry_the_sasl2_namespace() -> None:
    machine = StreamMachine(C2S, [HOST])
    machine.receive([StreamOpen("stream", {"to": HOST, "version": "1.0"}, {None: "jabber:client"})])
    machine.next_effect()
    machine.next_effect()
    machine.features(Offer(mechanisms=("PLAIN",), sasl2=True))
    machine.next_effect()
    machine.receive([Stanza(etree.fromstring(b"<authenticate xmlns='urn:xmpp:sasl:2' mechanism='X'/>"))])
    failure = machine.next_effect()
    assert isinstance(failure, fx.Write)
    assert etree.fromstring(failure.data).tag == "{urn:xmpp:sasl:2}failure"
    machine.receive([Stanza(etree.fromstring(b"<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'/>"))])
    assert isinstance(machine.next_effect(), fx.Authenticate)
    machine.sasl_challenge(b"more")
    challenge = machine.next_effect()
    assert isinstance(challenge, fx.Write)
    element = etree.fromstring(challenge.data)
    assert element.tag == "{urn:xmpp:sasl:2}challenge" and base64.b64decode(element.text or "") == b"more"


def test_stream_management_enable_ack_and_resume_on_a_new_connection() -> None:
    sessions: dict[str, Driver] = {}
    phone = Driver(sessions=sessions)
    login(phone)
    assert phone.feed(b"<enable xmlns='urn:xmpp:sm:3' resume='true' max='60'/>") == [
        "sm-enabled resumable", "enabled",
    ]
    sm = phone.machine.sm
    assert sm is not None
    for n in range(3):
        phone.deliver(etree.fromstring(f"<message xmlns='jabber:client' id='in{n}'><body>{n}</body></message>"))
    assert phone.feed(b"<a xmlns='urn:xmpp:sm:3' h='1'/>" + MESSAGE) == ["route message[chat](body)"]
    assert sm.unacked == 2
    phone.connection_lost()
    assert phone.trace[-1] == "hibernate" and phone.machine.state is State.READY
    phone.deliver(etree.fromstring(b"<message xmlns='jabber:client' id='in3'><body>3</body></message>"))

    laptop = Driver(sessions=sessions)
    laptop.feed(HEADER + b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", bytewise=False)
    laptop.feed(HEADER + b"<auth xmlns='" + SASL + b"' mechanism='PLAIN'>AHVzZXIAcGVuY2ls</auth>", bytewise=False)
    laptop.feed(HEADER)
    resume = f"<resume xmlns='urn:xmpp:sm:3' previd='{sm.id}' h='2'/>".encode()
    # The message pipelined behind <resume/> is handled by the resumed session.
    assert laptop.feed(resume + MESSAGE, bytewise=False) == ["resume", "resumed", "closed"]
    assert laptop.machine.state is State.CLOSED
    assert phone.trace[-2:] == ["adopted, resending 3", "route message[chat](body)"]  # in2, in3 and <r/>
    assert phone.wire[-3:-1] == [
        b'<message xmlns="jabber:client" id="in2"><body>2</body></message>',
        b'<message xmlns="jabber:client" id="in3"><body>3</body></message>',
    ]
    assert phone.machine.handled == 2  # the message before the loss and the one after resuming


def test_resuming_an_unknown_session_fails_and_the_stream_goes_on() -> None:
    client = Driver()
    client.feed(HEADER + b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", bytewise=False)
    client.feed(HEADER + b"<auth xmlns='" + SASL + b"' mechanism='PLAIN'>AHVzZXIAcGVuY2ls</auth>", bytewise=False)
    client.feed(HEADER)
    assert client.feed(b"<resume xmlns='urn:xmpp:sm:3' previd='nope' h='0'/>") == ["resume", "failed(item-not-found)"]
    assert client.feed(b"<enable xmlns='urn:xmpp:sm:3'/>") == ["failed(unexpected-request)"]
    assert client.feed(BIND)[-1] == "bound"


@pytest.mark.parametrize(
    ("data", "trace"),
    [
        (b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='example.net' "
         b"version='1.0'>", ["open example.net id2", "stream-error invalid-namespace", "close", "closed"]),
        (b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' "
         b"version='1.0'>", ["open example.net id2", "stream-error host-unknown", "close", "closed"]),
        (b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.net'>",
         ["open example.net id2", "stream-error unsupported-version", "close", "closed"]),
        (HEADER + b"<message to='a@example.net'><body>early</body></message>",
         ["open example.net id2", "features(starttls)", "stream-error not-authorized", "close", "closed"]),
        (HEADER + b"<foo xmlns='urn:example'/>",
         ["open example.net id2", "features(starttls)", "stream-error unsupported-stanza-type", "close", "closed"]),
        (HEADER + b"<message><body>a</b></message>",
         ["open example.net id2", "features(starttls)", "stream-error not-well-formed", "close", "closed"]),
        (b"<message/>", ["open example.net id2", "stream-error invalid-namespace", "close", "closed"]),
    ],
    ids=["namespace", "host", "version", "stanza-before-auth", "unknown-element", "bad-xml", "no-header"],
)
def test_stream_errors(data: bytes, trace: list[str]) -> None:
    assert Driver().feed(data) == trace


def test_a_bound_stream_checks_what_the_client_sends() -> None:
    client = Driver()
    login(client)
    assert client.feed(b"<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>") == ["iq[error](ping,error)"]
    assert client.feed(b"<presence type='bogus'/>") == ["presence[error](error)"]
    assert client.feed(BIND) == ["iq[error](bind,error)"]
    assert client.feed(b"<iq type='result' id='ping1'/>") == ["iq-response"]
    assert client.feed(b"<r xmlns='urn:xmpp:sm:3'/>") == [
        "stream-error unsupported-stanza-type", "close", "closed ready",
    ]


def test_a_forged_from_is_a_stream_error_and_a_restart_when_bound_too() -> None:
    client = Driver()
    login(client)
    assert client.feed(b"<message from='user@example.net'><body>ok: my bare JID</body></message>") == [
        "route message(body)"
    ]
    assert client.feed(b"<message from='juliet@example.net/x'><body>no</body></message>") == [
        "stream-error invalid-from", "close", "closed ready",
    ]
    other = Driver()
    login(other)
    # Over TCP a second header is bad XML; BOSH and WebSocket restarts arrive as events.
    assert other.feed(HEADER) == ["stream-error not-well-formed", "close", "closed ready"]
    other = Driver()
    login(other)
    other.machine.receive([StreamOpen("stream", {"to": HOST, "version": "1.0"}, {None: "jabber:client"})])
    other.run()
    assert other.trace[-4:] == ["open example.net id5", "stream-error not-authorized", "close", "closed ready"]


def test_feedback_out_of_turn_is_a_local_error() -> None:
    machine = StreamMachine(C2S, [HOST])
    with pytest.raises(LocalProtocolError):
        machine.sasl_challenge(b"x")
    machine.receive([StreamOpen("stream", {"to": HOST, "version": "1.0"}, {None: "jabber:client"})])
    assert isinstance(machine.next_effect(), fx.OpenStream)
    assert machine.next_effect() is fx.FEATURES
    with pytest.raises(LocalProtocolError):
        machine.next_effect()  # the features are due first
    with pytest.raises(LocalProtocolError):
        machine.stanza_handled()


def test_bosh_and_websocket_events_make_the_same_conversation_as_tcp_bytes() -> None:
    """BOSH and WebSocket hand the machine events built from their framing (an `<open/>` or a body
    with xmpp:restart becomes a StreamOpen); what the machine does is the same as for TCP bytes."""
    plain = b"<auth xmlns='" + SASL + b"' mechanism='PLAIN'>AHVzZXIAcGVuY2ls</auth>"
    bind = BIND.replace(b"<iq ", b"<iq xmlns='jabber:client' ")
    tcp = Driver(secure=True)
    for data in (HEADER, plain, HEADER, BIND, MESSAGE):
        tcp.feed(data)
    framed = Driver(secure=True)
    opening = StreamOpen("{http://etherx.jabber.org/streams}stream", {"to": HOST, "version": "1.0"},
                         {None: "jabber:client"})
    message = MESSAGE.replace(b"<message ", b"<message xmlns='jabber:client' ")
    for event in (opening, Stanza(etree.fromstring(plain)), opening, Stanza(etree.fromstring(bind)),
                  Stanza(etree.fromstring(message))):
        framed.machine.receive([event])
        framed.run()
    assert framed.trace == tcp.trace
    assert tcp.trace[-4:] == ["bind user@example.net/phone", "iq[result](bind)", "bound", "route message[chat](body)"]
