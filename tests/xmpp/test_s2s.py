"""Server streams (xmpp/s2s.py) fed byte by byte: a recorded incoming dialback exchange, and two machines
negotiating with each other (STARTTLS, SASL EXTERNAL, dialback with piggybacking, addressing checks)."""

from __future__ import annotations

import itertools
import re

import pytest
from lxml import etree

from appliance.xmpp import dialback as db
from appliance.xmpp import effects as fx
from appliance.xmpp import s2s
from appliance.xmpp.errors import StreamError
from appliance.xmpp.parser import Stanza, StreamParser

SECRET_A = b"secret of a"
SECRET_B = b"secret of b"
OPEN = ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
        "xmlns:db='jabber:server:dialback' xml:lang='en' {attrs} version='1.0'>")


class Side:
    """A machine with the real parser in front; `feed` gives it bytes (one at a time if asked) and
    carries out its effects, answering the async ones with `answers`."""

    def __init__(self, machine: s2s.ServerStream, *, bytewise: bool) -> None:
        self.machine = machine
        self.parser = StreamParser()
        self.bytewise = bytewise
        self.written: list[bytes] = []
        self.effects: list[object] = []
        self.pending_tls = False
        self.resumable: dict[str, int] = {}  # what the driver remembers of broken managed streams

    def feed(self, data: bytes) -> None:
        chunks = [data[i:i + 1] for i in range(len(data))] if self.bytewise else [data]
        for chunk in chunks:
            try:
                events = self.parser.feed(chunk)
            except StreamError as err:  # as the driver does: what parsed before it, then the error
                self.machine.receive(self.parser.take_events())
                self.machine.receive_error(err)
            else:
                self.machine.receive(events)
            self.run()

    def run(self) -> None:
        while (effect := self.machine.next_effect()) is not None:
            self.effects.append(effect)
            if isinstance(effect, fx.Write):
                self.written.append(effect.data)
            elif isinstance(effect, fx.SendStreamError):
                self.written.append(effect.error.to_bytes())
            elif effect is fx.RESTART:
                self.parser.reset()
            elif effect is fx.START_TLS:
                self.pending_tls = True
                self.parser.reset()
            elif isinstance(effect, s2s.ResumeCheck):
                self.machine.resume_result(self.resumable.get(effect.previd))
            elif isinstance(effect, s2s.CheckExternal):
                self.machine.external_result(effect.remote == "a.test")
            elif isinstance(effect, s2s.VerifyDialback):
                # the authoritative server's answer, computed as it would (its secret, our stream id)
                self.machine.dialback_result(effect.remote, effect.local, db.key_matches(
                    SECRET_A, effect.local, effect.remote, effect.stream_id, effect.key))

    def take(self) -> bytes:
        data, self.written = b"".join(self.written), []
        return data

    def types(self) -> list[str]:
        return [type(e).__name__ for e in self.effects]


def ids(prefix: str):
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter)}"


def pump(a: Side, b: Side, rounds: int = 20) -> None:
    """Carry bytes both ways until neither side has more to say; TLS "handshakes" complete at once."""
    for _ in range(rounds):
        moved = False
        for sender, receiver in ((a, b), (b, a)):
            data = sender.take()
            if data:
                moved = True
                receiver.feed(data)
        for side in (a, b):
            if side.pending_tls and not side.written:
                side.pending_tls = False
                side.machine.tls_done(external=side is b and b.machine.policy.external)
                side.run()
                moved = True
        if not moved:
            return


def pair(*, external: bool, bytewise: bool, require_tls: bool = True, dialback: bool = True) -> tuple[Side, Side]:
    out = Side(s2s.ServerStream(outgoing=True, hosts=["a.test", "a2.test"], secret=SECRET_A, local="a.test",
                                remote="b.test", policy=s2s.Policy(True, require_tls, dialback)), bytewise=bytewise)
    inc = Side(s2s.ServerStream(outgoing=False, hosts=["b.test"], secret=SECRET_B, new_id=ids("sid"),
                                policy=s2s.Policy(True, require_tls, dialback, external)), bytewise=bytewise)
    out.run()
    return out, inc


@pytest.mark.parametrize("bytewise", [False, True])
def test_recorded_incoming_dialback(bytewise: bool) -> None:
    """What Prosody sends when our certificate is not trusted: STARTTLS, then <db:result/>."""
    side = Side(s2s.ServerStream(outgoing=False, hosts=["b.test"], secret=SECRET_B, new_id=ids("sid"),
                                 policy=s2s.Policy(True, True, True)), bytewise=bytewise)
    side.feed(OPEN.format(attrs="from='a.test' to='b.test'").encode())
    assert side.take() == OPEN.format(attrs='from="b.test" to="a.test" id="sid1"').encode() + (
        b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
        b"<bidi xmlns='urn:xmpp:features:bidi'/></stream:features>")
    side.feed(b"<db:result from='a.test' to='b.test'>x</db:result>")  # before TLS: refused
    assert b"<policy-violation" in side.take()
    assert side.machine.phase is s2s.Phase.CLOSED

    side = Side(s2s.ServerStream(outgoing=False, hosts=["b.test"], secret=SECRET_B, new_id=ids("sid"),
                                 policy=s2s.Policy(True, True, True)), bytewise=bytewise)
    side.feed(OPEN.format(attrs="from='a.test' to='b.test'").encode())
    side.take()
    side.feed(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    assert side.take() == b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
    side.machine.tls_done()
    side.feed(OPEN.format(attrs="from='a.test' to='b.test'").encode())
    assert side.take().endswith(b"<stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/>"
                                b"</dialback><sm xmlns='urn:xmpp:sm:3'/><bidi xmlns='urn:xmpp:features:bidi'/>"
                                b"</stream:features>")
    key = db.key(SECRET_A, "b.test", "a.test", "sid2")
    side.feed(f"<db:result from='a.test' to='b.test'>{key}</db:result>".encode())
    assert side.take() == b'<db:result from="b.test" to="a.test" type="valid"/>'
    side.feed(b"<message from='juliet@a.test/x' to='romeo@b.test' type='chat'><body>hi</body></message>")
    routed = [e for e in side.effects if isinstance(e, Stanza)]
    assert [etree.QName(r.element).localname for r in routed] == ["message"]
    # the authoritative-server role: a key we made is confirmed, another is not
    ours = db.key(SECRET_B, "c.test", "b.test", "s9")
    side.feed(f"<db:verify from='c.test' to='b.test' id='s9'>{ours}</db:verify>".encode())
    assert side.take() == b'<db:verify from="b.test" to="c.test" id="s9" type="valid"/>'
    side.feed(b"<db:verify from='c.test' to='b.test' id='s9'>00</db:verify>")
    assert side.take() == b'<db:verify from="b.test" to="c.test" id="s9" type="invalid"/>'
    # a domain that never authenticated may not send
    side.feed(b"<message from='mallory@evil.test' to='romeo@b.test'/>")
    assert b"<invalid-from" in side.take()


@pytest.mark.parametrize("bytewise", [False, True])
def test_two_machines_dialback_and_piggybacking(bytewise: bool) -> None:
    out, inc = pair(external=False, bytewise=bytewise)
    out.machine.authorize("a2.test")  # a second virtual host rides on the same stream
    pump(out, inc)
    assert out.machine.secure and inc.machine.secure
    assert out.machine.pairs == {("b.test", "a.test"), ("b.test", "a2.test")}
    assert inc.machine.pairs == {(local, remote) for remote, local in out.machine.pairs}
    assert [e.method for e in out.effects if isinstance(e, s2s.Authorized)] == ["dialback", "dialback"]
    inc.feed(b"<message from='x@a2.test' to='y@b.test'><body>1</body></message>")
    assert sum(isinstance(e, Stanza) for e in inc.effects) == 1
    inc.feed(b"<message from='x@a2.test' to='y@elsewhere.test'/>")
    assert b"<host-unknown" in inc.take()  # RFC 6120 §8.1.1.2 rule 2


def test_an_authenticated_peer_may_address_another_of_our_domains() -> None:
    """Prosody replies to b.test over the stream it opened to conference.b.test (authorized for that pair
    only): taken, as Prosody and ejabberd take it; a domain we do not serve is still unknown."""
    inc = Side(s2s.ServerStream(outgoing=False, hosts=["b.test", "conference.b.test"], secret=SECRET_B,
                                new_id=ids("sid"), policy=s2s.Policy(True, False, True)), bytewise=False)
    inc.feed(OPEN.format(attrs="from='a.test' to='conference.b.test'").encode())
    inc.take()
    key = db.key(SECRET_A, "conference.b.test", "a.test", "sid1")
    inc.feed(f"<db:result from='a.test' to='conference.b.test'>{key}</db:result>".encode())
    assert inc.machine.pairs == {("a.test", "conference.b.test")}
    inc.feed(b"<iq type='result' id='1' from='romeo@a.test' to='juliet@b.test/x'/>")
    assert [etree.QName(e.element).localname for e in inc.effects if isinstance(e, Stanza)] == ["iq"]
    inc.feed(b"<message from='romeo@a.test' to='y@elsewhere.test'/>")
    assert b"<host-unknown" in inc.take()


@pytest.mark.parametrize("bytewise", [False, True])
def test_two_machines_sasl_external(bytewise: bool) -> None:
    out, inc = pair(external=True, bytewise=bytewise)
    pump(out, inc)
    assert out.machine.authenticated_external and inc.machine.authenticated_external
    assert [(e.remote, e.local, e.method) for e in inc.effects if isinstance(e, s2s.Authorized)] == [
        ("a.test", "b.test", "external")]
    assert [(e.remote, e.method) for e in out.effects if isinstance(e, s2s.Authorized)] == [("b.test", "external")]
    assert out.machine.phase is s2s.Phase.READY


def _secured_incoming(attrs: str = "from='a.test' to='b.test'") -> Side:
    """An incoming stream (header `attrs`) after STARTTLS with a CA-valid certificate: EXTERNAL is offered."""
    side = Side(s2s.ServerStream(outgoing=False, hosts=["b.test"], secret=SECRET_B, new_id=ids("sid"),
                                 policy=s2s.Policy(True, True, True, True)), bytewise=False)
    side.feed(OPEN.format(attrs=attrs).encode())
    side.feed(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    side.machine.tls_done(external=True)
    side.run()
    side.feed(OPEN.format(attrs=attrs).encode())
    return side


@pytest.mark.parametrize(("text", "remote"), [("ZWphYmJlcmQudGVzdA==", "ejabberd.test"), ("YS50ZXN0", "a.test"),
                                              ("=", "a.test")])
def test_external_authzid_padded_or_empty(text: str, remote: str) -> None:
    """ejabberd sends its domain as the authzid, base64 with its padding (RFC 4648); "=" is an empty one,
    which means the stream's from (RFC 6120 §6.4.2)."""
    side = _secured_incoming()
    side.take()
    side.feed(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>{text}</auth>".encode())
    assert [e.remote for e in side.effects if isinstance(e, s2s.CheckExternal)] == [remote]


def test_external_for_another_name_falls_back_to_dialback() -> None:
    out = Side(s2s.ServerStream(outgoing=True, hosts=["a.test"], secret=SECRET_A, local="a.test", remote="b.test",
                                policy=s2s.Policy(True, True, True)), bytewise=False)
    inc = Side(s2s.ServerStream(outgoing=False, hosts=["b.test"], secret=SECRET_B, new_id=ids("sid"),
                                policy=s2s.Policy(True, True, True, True)), bytewise=False)
    inc.machine.external_result = lambda ok: s2s.ServerStream.external_result(inc.machine, False)  # type: ignore[method-assign]
    out.run()
    pump(out, inc)
    assert [e.method for e in out.effects if isinstance(e, s2s.Authorized)] == ["dialback"]


def test_dialback_refused_when_certificates_are_required() -> None:
    out, inc = pair(external=False, bytewise=False, dialback=False)
    out.machine.policy = s2s.Policy(True, True, True)  # we would try dialback; the peer refuses it
    pump(out, inc)
    # a dialback error (XEP-0220 §2.4), not a stream error: the stream stays for other domain pairs
    refused = next(e for e in out.effects if isinstance(e, s2s.Refused))
    assert (refused.reason, refused.bounce) == ("dialback error: not-authorized", "remote-server-timeout")
    assert not inc.machine.pairs and inc.machine.phase is not s2s.Phase.CLOSED


def test_dialback_errors_keep_the_stream() -> None:
    """XEP-0220 §2.4: a request for a host we do not serve, or a key about one, gets item-not-found as a
    dialback error; an answer we cannot give gets its condition; an invalid key is refused as such."""
    out, inc = pair(external=False, bytewise=False)
    pump(out, inc)
    assert inc.machine.pairs == {("a.test", "b.test")}
    key = db.key(SECRET_A, "nobody.test", "a.test", "sid1")
    inc.feed(f"<db:result from='a.test' to='nobody.test'>{key}</db:result>".encode())
    assert inc.take() == (b'<db:result from="nobody.test" to="a.test" type="error"><error type=\'cancel\'>'
                          b"<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>")
    inc.feed(b"<db:verify from='c.test' to='nobody.test' id='s9'>00</db:verify>")
    assert b'<db:verify from="nobody.test" to="c.test" id="s9" type="error"><error type=\'cancel\'><item-not-found' \
        in inc.take()
    assert inc.machine.phase is s2s.Phase.READY  # and the pair authorized before still stands
    inc.feed(b"<message from='x@a.test' to='y@b.test'><body>still here</body></message>")
    assert sum(isinstance(e, Stanza) for e in inc.effects) == 1

    # the initiating side: an error refuses that host with remote-server-timeout, 'invalid' with
    # internal-server-error; the verifying side hears the authoritative server's error condition
    out.machine.authorize("a2.test")
    out.run()
    out.feed(b"<db:result from='b.test' to='a2.test' type='error'><error type='wait'>"
             b"<remote-connection-failed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>")
    refused = [e for e in out.effects if isinstance(e, s2s.Refused)]
    assert [(r.local, r.reason, r.bounce) for r in refused] == [
        ("a2.test", "dialback error: remote-connection-failed", "remote-server-timeout")]
    out.machine.verify(local="a.test", remote="b.test", stream_id="s1", key="00")
    out.run()
    out.feed(b"<db:verify from='b.test' to='a.test' id='s1' type='error'><error type='cancel'>"
             b"<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:verify>")
    [answer] = [e for e in out.effects if isinstance(e, s2s.VerifyAnswer)]
    assert (answer.valid, answer.error) == (False, "item-not-found")
    assert out.machine.pairs == {("b.test", "a.test")}


def test_dialback_result_with_an_error_condition() -> None:
    """The receiving side could not ask the authoritative server: the initiating side gets that condition."""
    side = Side(s2s.ServerStream(outgoing=False, hosts=["b.test"], secret=SECRET_B, new_id=ids("sid"),
                                 policy=s2s.Policy(True, False, True)), bytewise=False)
    side.machine.dialback_result = lambda *_: None  # type: ignore[method-assign]  # the answer comes later
    side.feed(OPEN.format(attrs="from='a.test' to='b.test'").encode())
    side.feed(b"<db:result from='a.test' to='b.test'>k</db:result>")
    side.take()
    s2s.ServerStream.dialback_result(side.machine, "a.test", "b.test", "remote-connection-failed")
    side.run()
    assert side.take() == (b'<db:result from="b.test" to="a.test" type="error"><error type=\'wait\'>'
                           b"<remote-connection-failed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
                           b"</db:result>")
    assert not side.machine.pairs and side.machine.phase is not s2s.Phase.CLOSED


def test_a_forged_key_is_refused() -> None:
    """XEP-0220 §2.2.1: an 'invalid' answer ends a stream that carries nothing else; on a stream that
    carries other domain pairs the forged one gets <forbidden/> and the others stay."""
    out, inc = pair(external=False, bytewise=False)
    pump(out, inc)
    inc.feed(b"<db:result from='mallory.test' to='b.test'>00</db:result>")  # Side answers: not a key of a's
    assert inc.take() == (b'<db:result from="b.test" to="mallory.test" type="error"><error type=\'cancel\'>'
                          b"<forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>")
    assert inc.machine.phase is s2s.Phase.READY and inc.machine.pairs == {("a.test", "b.test")}

    side = Side(s2s.ServerStream(outgoing=False, hosts=["b.test"], secret=SECRET_B, new_id=ids("sid"),
                                 policy=s2s.Policy(True, False, True)), bytewise=False)
    side.machine.dialback_result = lambda *_: None  # type: ignore[method-assign]  # answered below
    side.feed(OPEN.format(attrs="from='mallory.test' to='b.test'").encode())
    side.feed(b"<db:result from='mallory.test' to='b.test'>00</db:result>")
    side.take()
    s2s.ServerStream.dialback_result(side.machine, "mallory.test", "b.test", False)
    side.run()
    assert side.take() == b'<db:result from="b.test" to="mallory.test" type="invalid"/></stream:stream>'
    assert side.machine.phase is s2s.Phase.CLOSED


def test_outgoing_refuses_a_peer_without_tls_when_required() -> None:
    out, inc = pair(external=False, bytewise=False)
    inc.machine.policy = s2s.Policy(False, False, True)  # the peer cannot do TLS
    pump(out, inc)
    assert any(isinstance(e, s2s.TlsNeeded) for e in out.effects)
    assert not out.machine.pairs


def test_verify_waits_for_the_negotiated_stream() -> None:
    out, inc = pair(external=False, bytewise=False)
    out.machine.verify(local="a.test", remote="b.test", stream_id="s1", key="00")
    pump(out, inc)
    answers = [e for e in out.effects if isinstance(e, s2s.VerifyAnswer)]
    assert [(a.remote, a.local, a.stream_id, a.valid) for a in answers] == [("b.test", "a.test", "s1", False)]


def test_garbage_ends_the_stream_with_an_error() -> None:
    side = Side(s2s.ServerStream(outgoing=False, hosts=["b.test"], secret=SECRET_B,
                                 policy=s2s.Policy(True, True, True)), bytewise=False)
    side.feed(OPEN.format(attrs="from='a.test' to='b.test'").encode())
    side.feed(b"<message from='x@a.test' to='y@b.test'/>")  # before authentication (RFC 6120 §4.9.3.12)
    assert b"<not-authorized" in side.take()
    assert side.machine.phase is s2s.Phase.CLOSED


@pytest.mark.parametrize("bytewise", [False, True])
def test_stream_management_counts_acknowledges_and_resumes(bytewise: bool) -> None:
    out, inc = pair(external=False, bytewise=bytewise)
    pump(out, inc)
    [started] = [e for e in out.effects if isinstance(e, s2s.SmStarted)]
    assert started.sm_id == inc.machine.sm_id and started.handled is None and out.machine.sm_requested
    for n in range(3):
        inc.feed(f"<message from='x@a.test' to='y@b.test'><body>{n}</body></message>".encode())
    inc.feed(b"<r xmlns='urn:xmpp:sm:3'/>")
    assert inc.take() == b"<a xmlns='urn:xmpp:sm:3' h='3'/>"
    out.feed(b"<a xmlns='urn:xmpp:sm:3' h='3'/>")
    assert [e.h for e in out.effects if isinstance(e, s2s.Acked)] == [3]

    # the connection broke; a new one resumes the session and learns the peer's count
    out2 = Side(s2s.ServerStream(outgoing=True, hosts=["a.test"], secret=SECRET_A, local="a.test", remote="b.test",
                                 policy=s2s.Policy(True, True, True), resume=started.sm_id), bytewise=bytewise)
    inc2 = Side(s2s.ServerStream(outgoing=False, hosts=["b.test"], secret=SECRET_B, new_id=ids("new"),
                                 policy=s2s.Policy(True, True, True)), bytewise=bytewise)
    inc2.resumable[started.sm_id] = 3
    out2.run()
    pump(out2, inc2)
    assert [(e.sm_id, e.handled) for e in out2.effects if isinstance(e, s2s.SmStarted)] == [(started.sm_id, 3)]
    assert inc2.machine.sm_handled == 3 and inc2.machine.sm_id == started.sm_id

    # a peer that forgot the session: the resume fails and a fresh session starts at once
    out3 = Side(s2s.ServerStream(outgoing=True, hosts=["a.test"], secret=SECRET_A, local="a.test", remote="b.test",
                                 policy=s2s.Policy(True, True, True), resume="forgotten"), bytewise=bytewise)
    inc3 = Side(s2s.ServerStream(outgoing=False, hosts=["b.test"], secret=SECRET_B, new_id=ids("n3"),
                                 policy=s2s.Policy(True, True, True)), bytewise=bytewise)
    out3.run()
    pump(out3, inc3)
    sm_effects = [e for e in out3.effects if isinstance(e, s2s.SmStarted | s2s.SmFailed)]
    assert sm_effects == [s2s.SmFailed(resuming=True), s2s.SmStarted(inc3.machine.sm_id, None)]
    assert inc3.machine.sm_handled == 0


def test_stream_management_off_or_before_authentication() -> None:
    out, inc = pair(external=False, bytewise=False)
    inc.machine.policy = s2s.Policy(True, True, True, stream_management=False)  # the peer does not offer it
    pump(out, inc)
    assert out.machine.pairs and not out.machine.sm_requested
    early = Side(s2s.ServerStream(outgoing=False, hosts=["b.test"], secret=SECRET_B, new_id=ids("e"),
                                  policy=s2s.Policy(True, False, True)), bytewise=False)
    early.feed(OPEN.format(attrs="from='a.test' to='b.test'").encode())
    early.take()
    early.feed(b"<enable xmlns='urn:xmpp:sm:3'/>")  # nobody is authenticated yet
    assert b"<unexpected-request" in early.take() and early.machine.sm_handled is None


@pytest.mark.parametrize("bidi", [True, False])
def test_bidirectional_streams(bidi: bool) -> None:
    out, inc = pair(external=False, bytewise=False)
    inc.machine.policy = s2s.Policy(True, True, True, bidi=bidi)
    pump(out, inc)
    assert out.machine.bidi is bidi and inc.machine.bidi is bidi
    assert inc.machine.may_send("b.test", "a.test") is bidi and out.machine.may_send("a.test", "b.test")
    assert not inc.machine.may_send("b.test", "c.test")  # only the pairs authorized on the stream
    out.feed(b"<message from='romeo@b.test' to='juliet@a.test'><body>back</body></message>")
    if bidi:
        assert [etree.QName(e.element).localname for e in out.effects if isinstance(e, Stanza)] == ["message"]
        out.feed(b"<message from='eve@c.test' to='juliet@a.test'/>")  # not the peer's domain
        assert b"<invalid-from" in out.take()
    else:
        assert b"<unsupported-stanza-type" in out.take()


def test_bidirectional_external_stream_carries_stanzas_back_only_after_the_restart() -> None:
    """Incoming EXTERNAL on a bidi stream: between our <success/> and the peer's restarted header nothing may
    be written back (the peer's parser discards it, or it reaches a stream not yet authorized there), so
    the pair is announced (`Authorized`) and `may_send` holds only once our new features are out."""
    side = _secured_incoming()
    side.feed(b"<bidi xmlns='urn:xmpp:bidi'/>"
              b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
    assert b"<success" in side.take()
    assert side.machine.bidi and side.machine.pairs == {("a.test", "b.test")}
    assert not side.machine.may_send("b.test", "a.test")
    assert not any(isinstance(e, s2s.Authorized) for e in side.effects)
    side.feed(OPEN.format(attrs="from='a.test' to='b.test'").encode())
    assert side.take().endswith(b"</stream:features>")
    assert isinstance(side.effects[-1], s2s.Authorized) and side.effects[-1].method == "external"
    assert side.machine.may_send("b.test", "a.test")


# -- RFC 6120's server-to-server rules, one by one (docs/compliance-rfc6120-s2s.md) -------------------

SASL = "urn:ietf:params:xml:ns:xmpp-sasl"


def incoming(*, require_tls: bool = True) -> Side:
    return Side(s2s.ServerStream(outgoing=False, hosts=["b.test"], secret=SECRET_B, new_id=ids("sid"),
                                 policy=s2s.Policy(True, require_tls, True)), bytewise=False)


def authenticated() -> Side:
    """An incoming stream on which a.test authenticated towards b.test with dialback (no TLS required)."""
    side = incoming(require_tls=False)
    side.feed(OPEN.format(attrs="from='a.test' to='b.test'").encode())
    side.feed(f"<db:result from='a.test' to='b.test'>{db.key(SECRET_A, 'b.test', 'a.test', 'sid1')}</db:result>"
              .encode())
    side.take()
    assert side.machine.pairs == {("a.test", "b.test")}
    return side


def secured(attrs: str) -> Side:
    """`_secured_incoming` with what it wrote so far taken."""
    side = _secured_incoming(attrs)
    assert b"<mechanism>EXTERNAL</mechanism>" in side.take()
    return side


def routed(side: Side) -> int:
    return sum(isinstance(e, Stanza) for e in side.effects)


@pytest.mark.parametrize(("stanza", "condition"), [
    (b"<message to='romeo@b.test'><body>1</body></message>", b"<improper-addressing"),  # §8.1.2.2 rule 1
    (b"<message from='' to='romeo@b.test'/>", b"<improper-addressing"),
    (b"<message from='jul@iet@a.test' to='romeo@b.test'/>", b"<improper-addressing"),
    (b"<message from='juliet@a.test'><body>1</body></message>", b"<improper-addressing"),  # §8.1.1.2 rule 1
    (b"<presence from='juliet@a.test' to=''/>", b"<improper-addressing"),
    (b"<iq type='get' id='1' from='juliet@a.test' to='romeo@b..test'/>", b"<improper-addressing"),
    (b"<message from='juliet@a.test' to='romeo@elsewhere.test'/>", b"<host-unknown"),  # §8.1.1.2 rule 2
    (b"<message from='eve@c.test' to='romeo@b.test'/>", b"<invalid-from"),  # §8.1.2.2 rule 2
])
def test_stanza_addressing_between_servers(stanza: bytes, condition: bytes) -> None:
    side = authenticated()
    side.feed(b"<message from='juliet@a.test/x' to='romeo@b.test'><body>fine</body></message>")
    assert routed(side) == 1
    side.feed(stanza)
    answer = side.take()
    assert condition in answer and answer.endswith(b"</stream:stream>")
    assert routed(side) == 1 and side.machine.phase is s2s.Phase.CLOSED


@pytest.mark.parametrize(("opening", "condition"), [
    (OPEN.format(attrs="from='a.test' to='nobody.test'"), b"<host-unknown"),  # §4.7.2, §4.9.3.6
    (OPEN.replace("'jabber:server'", "'jabber:client'").format(attrs="from='a.test' to='b.test'"),
     b"<invalid-namespace"),  # §4.8.2, §4.9.3.10
    (OPEN.replace("http://etherx.jabber.org/streams", "urn:not:streams").format(attrs="from='a.test' to='b.test'"),
     b"<invalid-namespace"),  # §4.8.1 (found by the parser)
    (OPEN.replace("{attrs} version='1.0'", "{attrs} version='0.9'").format(attrs="from='a.test' to='b.test'"),
     b"<unsupported-version"),  # §4.7.5, §4.9.3.25
    (OPEN.replace("{attrs} version='1.0'", "{attrs}").format(attrs="from='a.test' to='b.test'"),
     b"<unsupported-version"),
    (OPEN.format(attrs="from='juliet@a.test/x' to='b.test'"), b"<improper-addressing"),  # not a domain
])
def test_stream_header_errors_follow_a_response_header(opening: str, condition: bytes) -> None:
    """RFC 6120 §4.9.1.2: an error found in the initial header still goes after a response header."""
    side = incoming()
    side.feed(opening.encode())
    head, separator, tail = side.take().partition(b"<stream:error>")
    assert separator and condition in tail and tail.endswith(b"</stream:stream>")
    assert head.startswith(b"<?xml version='1.0'?><stream:stream xmlns='jabber:server'")
    assert b" xml:lang='en'" in head and b' id="sid1"' in head and b"juliet" not in head
    assert b"<stream:features" not in head and side.machine.phase is s2s.Phase.CLOSED


def test_response_header_language_and_unpredictable_ids() -> None:
    """§4.7.4: xml:lang on our headers, both directions; §4.7.3: each stream id is 96 random bits."""
    seen = set()
    for _ in range(3):
        side = Side(s2s.ServerStream(outgoing=False, hosts=["b.test"], secret=SECRET_B,
                                     policy=s2s.Policy(True, True, True)), bytewise=False)
        side.feed(OPEN.format(attrs="from='a.test' to='b.test'").encode())
        stream_id = side.machine.stream_id or ""
        assert re.fullmatch("[0-9a-f]{24}", stream_id) and f' id="{stream_id}"'.encode() in side.take()
        seen.add(stream_id)
    assert len(seen) == 3
    out, _ = pair(external=False, bytewise=False)
    assert out.take().startswith(OPEN.format(attrs='from="a.test" to="b.test"').encode())


def test_data_pipelined_behind_starttls_is_discarded() -> None:
    """§5.4.3.3: what the initiating side sent after <starttls/>, before the handshake, is dropped (here
    a valid dialback key and a stanza, which would otherwise authenticate a.test in the clear)."""
    side = incoming(require_tls=False)
    side.feed(OPEN.format(attrs="from='a.test' to='b.test'").encode())
    side.take()
    key = db.key(SECRET_A, "b.test", "a.test", "sid1")
    side.feed(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
              + f"<db:result from='a.test' to='b.test'>{key}</db:result>".encode()
              + b"<message from='x@a.test' to='y@b.test'/>")
    assert side.take() == b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
    side.machine.tls_done()
    side.run()
    side.feed(OPEN.format(attrs="from='a.test' to='b.test'").encode())
    assert side.take().endswith(b"</stream:features>")
    assert side.machine.phase is s2s.Phase.NEGOTIATING and not side.machine.pairs
    assert not any(isinstance(e, Stanza | s2s.VerifyDialback) for e in side.effects)


@pytest.mark.parametrize(("attrs", "auth", "condition"), [
    ("from='a.test' to='b.test'", "<auth xmlns='{ns}' mechanism='PLAIN'>AGEAYg==</auth>", "invalid-mechanism"),
    ("from='a.test' to='b.test'", "<auth xmlns='{ns}' mechanism='EXTERNAL'>not base64!</auth>", "incorrect-encoding"),
    ("to='b.test'", "<auth xmlns='{ns}' mechanism='EXTERNAL'>=</auth>", "invalid-authzid"),  # no 'from' to mean
])
def test_sasl_failure_conditions(attrs: str, auth: str, condition: str) -> None:
    """§6.5: each failure has its condition, and the stream stays for another try or dialback (§6.4.5)."""
    side = secured(attrs)
    side.feed(auth.format(ns=SASL).encode())
    assert side.take() == f"<failure xmlns='{SASL}'><{condition}/></failure>".encode()
    assert side.machine.phase is s2s.Phase.NEGOTIATING and not any(isinstance(e, s2s.CheckExternal)
                                                                   for e in side.effects)


def test_sasl_abort_is_answered_with_aborted() -> None:
    """§6.4.4: <abort/> gets <failure><aborted/></failure> and the stream goes on; an abort that crossed
    our <success/> belongs to the stream both sides restart and is dropped."""
    side = secured("from='a.test' to='b.test'")
    side.feed(f"<abort xmlns='{SASL}'/>".encode())
    assert side.take() == f"<failure xmlns='{SASL}'><aborted/></failure>".encode()
    assert side.machine.phase is s2s.Phase.NEGOTIATING
    side.feed(f"<auth xmlns='{SASL}' mechanism='EXTERNAL'>=</auth><abort xmlns='{SASL}'/>".encode())
    assert side.take() == f"<success xmlns='{SASL}'/>".encode()
    side.feed(OPEN.format(attrs="from='a.test' to='b.test'").encode())
    assert side.take().endswith(b"</stream:features>") and side.machine.pairs == {("a.test", "b.test")}


def test_nothing_is_written_between_sasl_success_and_the_restart() -> None:
    """§6.4.6: on both sides the restart's header is the next thing written after the outcome, even with a
    <db:verify/> waiting to go out on the initiating side."""
    out, inc = pair(external=True, bytewise=False)
    out.machine.verify(local="a.test", remote="b.test", stream_id="s1", key="00")
    pump(out, inc)
    assert out.machine.authenticated_external and inc.machine.authenticated_external
    sent = [e.data for e in out.effects if isinstance(e, fx.Write)]
    auth = next(n for n, data in enumerate(sent) if data.startswith(b"<auth "))
    assert sent[auth + 1].startswith(b"<?xml") and any(d.startswith(b"<db:verify") for d in sent[auth + 2:])
    answered = [e.data for e in inc.effects if isinstance(e, fx.Write)]
    success = answered.index(f"<success xmlns='{SASL}'/>".encode())
    assert answered[success + 1].startswith(b"<?xml")
