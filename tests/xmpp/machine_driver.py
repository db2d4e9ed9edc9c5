"""A synchronous stand-in for the c2s driver, for feeding recorded transcripts to the stream machine.

It parses the client's bytes (one at a time if asked) with the real stream parser, carries out every
effect the machine returns and answers the async ones the way core/c2s does, with a real SCRAM server
(RFC 7677's test vector) and PLAIN against one account. Each effect leaves one line in `trace`, so a
test reads like the conversation it checks.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable

from lxml import etree

from appliance.xmpp import effects as fx
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.jid import JID
from appliance.xmpp.machine import C2S, Offer, SmPolicy, State, StreamMachine
from appliance.xmpp.ns import NS_SM, NS_STREAM
from appliance.xmpp.parser import Stanza, StreamParser
from appliance.xmpp.sasl import SaslFailure, plain
from appliance.xmpp.sasl.scram import ScramServer
from tests.xmpp.test_scram import make_keys

HOST = "example.net"
USER = "user"
PASSWORD = "pencil"
SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")  # RFC 7677 §3
SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"


KEYS = make_keys(PASSWORD, "SHA-256", SALT)


def offer_for(state: State, secure: bool) -> Offer:
    """What a host with SASL2, stream management and CSI offers (TLS required before login)."""
    if not secure:
        return Offer(starttls=True, starttls_required=True, encryption_required=True)
    return Offer(
        mechanisms=("SCRAM-SHA-256", "PLAIN"), sasl2=True, bind2=(NS_SM,),
        sm=SmPolicy(max_queue=10, resume_timeout=300), csi=True,
    )


def summary(element: etree._Element) -> str:
    """`localname[type](children)`: enough to tell the elements of a transcript apart."""
    name = etree.QName(element).localname
    kind = element.get("type")
    if kind and name in ("iq", "message", "presence"):
        name += f"[{kind}]"
    children = [etree.QName(c).localname for c in element if isinstance(c.tag, str)]
    return f"{name}({','.join(children)})" if children else name


def _parse_written(data: bytes) -> etree._Element:
    wrapped = etree.fromstring(b"<w xmlns:stream='" + NS_STREAM.encode() + b"'>" + data + b"</w>")
    return wrapped[0]


class Driver:
    """One client connection: the parser, the machine, and what the server did, in order."""

    def __init__(
        self, *, secure: bool = False, sessions: dict[str, Driver] | None = None,
        offer: Callable[[State, bool], Offer] = offer_for,
    ) -> None:
        counter = itertools.count(1)
        self.machine = StreamMachine(C2S, [HOST], new_id=lambda: f"id{next(counter)}")
        self.parser = StreamParser()
        self.secure = secure
        self.offer = offer
        self.trace: list[str] = []
        self.routed: list[etree._Element] = []
        self.wire: list[bytes] = []  # sent to the client after stream management counted it
        self.sessions = sessions if sessions is not None else {}  # SM id -> driver, for resumption
        self.hibernating = False
        self._scram: ScramServer | None = None

    # -- input ------------------------------------------------------------------------------------

    def feed(self, data: bytes, *, bytewise: bool = True) -> list[str]:
        """Feed the client's bytes (one at a time by default); return the trace lines they caused."""
        start = len(self.trace)
        chunks = [data[i : i + 1] for i in range(len(data))] if bytewise else [data]
        for chunk in chunks:
            if self.machine.state is State.CLOSED:
                break
            try:
                events = self.parser.feed(chunk)
            except Exception as err:  # StreamError from the parser
                self.machine.receive(self.parser.take_events())
                self.machine.receive_error(err)  # type: ignore[arg-type]
            else:
                self.machine.receive(events)
            self.run()
        return self.trace[start:]

    def run(self) -> None:
        machine = self.machine
        while (effect := machine.next_effect()) is not None:
            self.apply(effect)

    def flush(self) -> None:
        while (effect := self.machine.take_effect()) is not None:
            self.apply(effect)

    # -- output to the client, as ClientSession.send does it ------------------------------------------

    def deliver(self, element: etree._Element) -> None:
        """A stanza for the client (from the router): counted and queued by stream management."""
        data = etree.tostring(element)
        if self.machine.sm is not None:
            self.machine.sm.outbound(data)
        if not self.hibernating:
            self.wire.append(data)

    # -- effects ------------------------------------------------------------------------------------

    def apply(self, effect: fx.Effect) -> None:
        m = self.machine
        note = self.trace.append
        if isinstance(effect, fx.Write):
            note(summary(_parse_written(effect.data)))
        elif isinstance(effect, fx.Send):
            note(summary(effect.element))
        elif isinstance(effect, fx.OpenStream):
            note(f"open {effect.host} {effect.stream_id}")
        elif isinstance(effect, fx.SendStreamError):
            note(f"stream-error {effect.error.condition}")
        elif isinstance(effect, fx.Closed):
            note("closed ready" if effect.was_ready else "closed")
        elif effect is fx.CLOSE_STREAM:
            note("close")
        elif effect is fx.RESTART:
            note("restart")
            self.parser.reset()
        elif effect is fx.START_TLS:
            note("starttls")
            self.parser.reset()
            self.secure = True
        elif effect is fx.FEATURES:
            m.features(self.offer(m.state, self.secure))
        elif effect is fx.BOUND:
            note("bound")
        elif effect is fx.SM_ENABLED:
            assert m.sm is not None
            note("sm-enabled resumable" if m.sm.resumable else "sm-enabled")
            if m.sm.resumable:
                self.sessions[m.sm.id] = self
        elif isinstance(effect, fx.Authenticate):
            note(f"authenticate {effect.mechanism}")
            self._authenticate(effect)
        elif isinstance(effect, fx.SaslResponse):
            note("sasl-response")
            self._respond(effect)
        elif isinstance(effect, fx.Sasl2Success):
            note("sasl2-success")
            self._sasl2_success(effect)
        elif isinstance(effect, fx.Bind):
            note(f"bind {effect.jid}")
            m.bound(effect.jid, effect.iq)
        elif isinstance(effect, fx.Resume):
            note("resume")
            self._resume(effect.element)
        elif isinstance(effect, fx.PreauthIq):
            note("preauth-iq")
            m.reply_error(effect.element, StanzaError.service_unavailable())
        elif isinstance(effect, fx.ClientState):
            note("csi active" if effect.active else "csi inactive")
        elif isinstance(effect, fx.IqResponse):
            note("iq-response")
        elif isinstance(effect, Stanza):
            note(f"route {summary(effect.element)}")
            self.routed.append(effect.element)
            m.stanza_handled()
        else:
            raise AssertionError(f"unknown effect {effect!r}")

    def _authenticate(self, effect: fx.Authenticate) -> None:
        m = self.machine
        try:
            data = effect.payload()
            if effect.mechanism == "PLAIN":
                _authzid, authcid, password = plain.parse(data)
                if (authcid, password) != (USER, PASSWORD):
                    raise SaslFailure("not-authorized")
                m.sasl_success(JID.make(USER, HOST, None))
                return
            server = ScramServer("SHA-256", plus=False, channel_bindings={}, nonce=SERVER_NONCE)
            name = server.first(data)
            challenge = server.challenge(KEYS if name == USER else None)
        except SaslFailure as failure:
            m.sasl_failure(failure.condition)
            return
        self._scram = server
        m.sasl_challenge(challenge)

    def _respond(self, effect: fx.SaslResponse) -> None:
        server, self._scram = self._scram, None
        assert server is not None
        try:
            final = server.final(effect.payload())
        except SaslFailure as failure:
            self.machine.sasl_failure(failure.condition)
            return
        self.machine.sasl_success(JID.make(USER, HOST, None), final)

    def _sasl2_success(self, effect: fx.Sasl2Success) -> None:
        """As core/c2s/sasl2.py: inline resumption, or Bind 2 with inline stream management."""
        m = self.machine
        success = etree.Element("{urn:xmpp:sasl:2}success", nsmap={None: "urn:xmpp:sasl:2"})
        if effect.additional:
            etree.SubElement(success, "{urn:xmpp:sasl:2}additional-data").text = (
                base64.b64encode(effect.additional).decode()
            )
        resume = effect.request.find(f"{{{NS_SM}}}resume")
        bind = effect.request.find("{urn:xmpp:bind:0}bind")
        old = self._find(resume) if resume is not None else None
        if old is not None:
            success.append(etree.Element(f"{{{NS_SM}}}resumed", previd=resume.get("previd", ""),
                                         h=str(old.machine.handled)))
            m.sasl2_done(etree.tostring(success), resumed=True)
            self.flush()
            old.adopt(self)
            return
        if bind is not None:
            tag = bind.findtext("{urn:xmpp:bind:0}tag") or "res"
            m.bound(JID.make(USER, HOST, tag))
            bound = etree.SubElement(success, "{urn:xmpp:bind:0}bound")
            for child in bind:
                if child.tag == f"{{{NS_SM}}}enable":
                    bound.append(etree.fromstring(m.enable_sm(child)))
        m.sasl2_done(etree.tostring(success), resumed=False)

    def _find(self, resume: etree._Element) -> Driver | None:
        old = self.sessions.get(resume.get("previd", ""))
        if old is None or old.machine.state is not State.READY or old.machine.sm is None:
            return None
        old.machine.sm.acknowledge(resume.get("h"))
        return old

    def _resume(self, element: etree._Element) -> None:
        m = self.machine
        old = self._find(element)
        if old is None:
            from appliance.xmpp import sm

            m.resume_failed(sm.failed("item-not-found"))
            return
        m.resumed(element.get("previd", ""), old.machine.handled)
        self.flush()
        old.adopt(self)

    def adopt(self, newcomer: Driver) -> None:
        """This (old, hibernated) session takes the newcomer's connection."""
        resend = self.machine.adopt(newcomer.machine)
        newcomer.flush()
        self.parser = newcomer.parser
        self.hibernating = False
        self.trace.append(f"adopted, resending {len(resend)}")
        self.wire.extend(resend)
        self.run()

    def connection_lost(self) -> None:
        if self.machine.connection_lost():
            self.hibernating = True
            self.trace.append("hibernate")
        else:
            self.flush()
