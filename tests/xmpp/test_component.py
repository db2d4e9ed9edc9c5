"""The component stream (XEP-0114) on the stream machine, fed recorded transcripts one byte at a time; the
bytes the server writes are compared exactly, as a component would read them."""

from __future__ import annotations

import hashlib

from lxml import etree

from appliance.xmpp import component as xc
from appliance.xmpp import effects as fx
from appliance.xmpp import stream as xs
from appliance.xmpp.errors import StreamError
from appliance.xmpp.machine import COMPONENT, State, StreamMachine
from appliance.xmpp.ns import NS_CLIENT, NS_COMPONENT
from appliance.xmpp.parser import Stanza, StreamParser

DOMAIN = "irc.example.net"
SECRET = "s3cret"
STREAM_ID = "3BF96D32"
HEADER = (
    b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' "
    b"to='irc.example.net'>"
)
REPLY = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
    b'xmlns:stream=\'http://etherx.jabber.org/streams\' from="irc.example.net" id="3BF96D32" xml:lang="en">'
)
DIGEST = hashlib.sha1((STREAM_ID + SECRET).encode()).hexdigest().encode()


class ComponentDriver:
    """Carries out the machine's effects as core/component does; `wire` is what the component reads."""

    def __init__(self, *, connected: set[str] | None = None) -> None:
        self.machine = StreamMachine(COMPONENT, [DOMAIN], new_id=lambda: STREAM_ID)
        self.parser = StreamParser()
        self.wire = b""
        self.routed: list[etree._Element] = []
        self.connected = connected if connected is not None else set()
        self.closed = False

    def feed(self, data: bytes) -> bytes:
        """Feed one byte at a time; return what the server wrote meanwhile."""
        start = len(self.wire)
        for i in range(len(data)):
            try:
                events = self.parser.feed(data[i : i + 1])
            except StreamError as err:
                self.machine.receive_error(err)
            else:
                self.machine.receive(events)
            while (effect := self.machine.next_effect()) is not None:
                self.apply(effect)
        return self.wire[start:]

    def apply(self, effect: fx.Effect) -> None:
        m = self.machine
        if isinstance(effect, fx.OpenStream):
            assert effect.version is None  # component streams carry no version
            self.wire += xs.stream_header(from_=effect.host, stream_id=effect.stream_id, to=effect.to,
                                          version=effect.version, namespace=NS_COMPONENT)
        elif isinstance(effect, fx.Write):
            self.wire += effect.data
        elif isinstance(effect, fx.SendStreamError):
            self.wire += effect.error.to_bytes()
        elif effect is fx.CLOSE_STREAM:
            self.wire += xs.STREAM_CLOSE
        elif isinstance(effect, fx.Closed):
            self.closed = True
        elif isinstance(effect, fx.Handshake):
            assert m.host is not None
            if not xc.handshake_matches(effect.digest, m.stream_id, SECRET):
                m.handshake_refused(StreamError.not_authorized("Wrong handshake"))
            elif m.host in self.connected:
                m.handshake_refused(StreamError.conflict("Already connected"))
            else:
                self.connected.add(m.host)
                m.handshake_accepted()
        elif isinstance(effect, Stanza):
            self.routed.append(effect.element)
            m.stanza_handled()
        else:
            raise AssertionError(f"unexpected effect {effect!r}")


def test_the_digest_is_sha1_hex_of_stream_id_and_secret() -> None:
    # XEP-0114 §3's example: stream id 3BF96D32 and secret "sesame".
    assert xc.handshake_digest("3BF96D32", "sesame") == hashlib.sha1(b"3BF96D32sesame").hexdigest()
    assert xc.handshake_matches(xc.handshake_digest("x", "y").upper(), "x", "y")
    assert not xc.handshake_matches("", "x", "y")


def test_handshake_then_stanzas_both_ways_then_close() -> None:
    comp = ComponentDriver()
    assert comp.feed(HEADER) == REPLY
    assert comp.machine.state is State.UNAUTHENTICATED
    assert comp.feed(b"<handshake>" + DIGEST + b"</handshake>") == b"<handshake xmlns='jabber:component:accept'/>"
    assert comp.machine.state is State.READY and str(comp.machine.jid) == DOMAIN
    sent = b"<message from='#chan%irc.example.net@irc.example.net/nick' to='romeo@example.net' type='groupchat'>" \
           b"<body>hi</body><x xmlns='urn:example'><y/></x></message>"
    assert comp.feed(sent) == b""
    routed = comp.routed[0]
    assert routed.tag == f"{{{NS_CLIENT}}}message" and routed.find(f"{{{NS_CLIENT}}}body").text == "hi"
    assert routed.find("{urn:example}x/{urn:example}y") is not None
    assert etree.tostring(routed).startswith(b'<message xmlns="jabber:client" ')
    # A routed stanza goes back out in the component namespace.
    assert xc.to_component(routed) == (
        b'<message xmlns="jabber:component:accept" from="#chan%irc.example.net@irc.example.net/nick" '
        b'to="romeo@example.net" type="groupchat"><body>hi</body><x xmlns="urn:example"><y/></x></message>'
    )
    assert comp.feed(b"</stream:stream>") == b"</stream:stream>"
    assert comp.closed


def test_a_wrong_secret_is_not_authorized() -> None:
    comp = ComponentDriver()
    comp.feed(HEADER)
    assert comp.feed(b"<handshake>0000</handshake>") == (
        b"<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        b"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>Wrong handshake</text></stream:error>"
        b"</stream:stream>"
    )
    assert comp.closed and comp.machine.state is State.CLOSED


def test_a_second_connection_for_a_connected_component_gets_conflict() -> None:
    connected: set[str] = set()
    first = ComponentDriver(connected=connected)
    first.feed(HEADER + b"<handshake>" + DIGEST + b"</handshake>")
    second = ComponentDriver(connected=connected)
    second.feed(HEADER)
    out = second.feed(b"<handshake>" + DIGEST + b"</handshake>")
    assert out.startswith(b"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>")
    assert second.closed and first.machine.state is State.READY


def test_unknown_domain_wrong_namespace_and_early_stanzas() -> None:
    unknown = ComponentDriver()
    out = unknown.feed(HEADER.replace(b"irc.example.net", b"other.example.net"))
    assert b"<host-unknown " in out and unknown.closed
    wrong_ns = ComponentDriver()
    assert b"<invalid-namespace " in wrong_ns.feed(HEADER.replace(b"jabber:component:accept", b"jabber:client"))
    early = ComponentDriver()
    early.feed(HEADER)
    out = early.feed(b"<message from='irc.example.net' to='a@example.net'><body>x</body></message>")
    assert out.startswith(b"<stream:error><not-authorized ") and early.closed


def test_a_ready_component_may_only_send_from_its_domain_with_an_address() -> None:
    comp = ComponentDriver()
    comp.feed(HEADER + b"<handshake>" + DIGEST + b"</handshake>")
    assert comp.feed(b"<message from='user@irc.example.net' to='romeo@example.net'/>") == b""
    assert len(comp.routed) == 1
    out = comp.feed(b"<message from='romeo@example.net' to='juliet@example.net'/>")
    assert out.startswith(b"<stream:error><invalid-from ") and comp.closed
    other = ComponentDriver()
    other.feed(HEADER + b"<handshake>" + DIGEST + b"</handshake>")
    assert other.feed(b"<iq type='get' id='1' from='irc.example.net'/>").startswith(
        b"<stream:error><improper-addressing "
    )
