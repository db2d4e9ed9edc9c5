"""The stream machine, h11-style: events in, effects out, every state change in this one class.

A `StreamMachine` is fed parsed events (`receive`) and yields effects (`next_effect`) that its driver
carries out (core/c2s for client streams): writes, stream open and close, SASL steps whose
credentials the driver looks up, TLS, binding, routing. Async effects pause the machine until the
driver calls the feedback method the effect names, so input is always handled in order.

Errors come in two kinds, as in h11: what the peer did wrong (an element the state does not accept,
a bad `from`, an `h` beyond what we sent) becomes a stream error the machine writes and closes on
itself; what the driver did wrong (feedback nobody asked for) raises `LocalProtocolError`.

The machine knows nothing of asyncio, sockets, storage or the clock; the stream's `Profile` (role,
content namespace, state table) and the `Offer` of each state (what the driver's configuration,
modules and TLS allow) are parameters, so the same machine can serve other kinds of streams.

Other streams plug in as profiles: an incoming server stream is `Profile(Role.SERVER_IN,
NS_SERVER, ...)` whose table takes STARTTLS and SASL EXTERNAL (plus dialback elements) before
READY, with an Offer of those features and no bind; an outgoing one runs the same table from the
initiating side (it sends the header and reads the features); a component stream (XEP-0114)
takes one `<handshake/>` instead of SASL. The drivers in core/ (s2s, component) carry out the
same effects.
"""

from __future__ import annotations

import enum
import secrets
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from lxml import etree

from appliance.xmpp import component as xc
from appliance.xmpp import effects as fx
from appliance.xmpp import sm
from appliance.xmpp import stream as xs
from appliance.xmpp.errors import StanzaError, StreamError, error_reply
from appliance.xmpp.jid import JID, JIDError
from appliance.xmpp.ns import NS_BIND, NS_CLIENT, NS_COMPONENT, NS_SASL2, NS_SESSION, NS_TLS
from appliance.xmpp.parser import Event, Stanza, StreamClose, StreamOpen
from appliance.xmpp.stream import C2SState

State = C2SState
BIND = f"{{{NS_BIND}}}bind"
LEGACY_SESSION = f"{{{NS_SESSION}}}session"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
MAX_AUTH_ATTEMPTS = 3
TLS_PROCEED = f"<proceed xmlns='{NS_TLS}'/>".encode()
TLS_FAILURE = f"<failure xmlns='{NS_TLS}'/>".encode()
_PRESENCE_TYPES = frozenset(
    {None, "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error"}
)
_IQ_TYPES = frozenset({"get", "set", "result", "error"})
_RESTARTABLE = frozenset({State.CONNECTED, State.UNAUTHENTICATED, State.AUTHENTICATED})


class Role(enum.Enum):
    """Which side of which kind of stream a machine runs."""

    CLIENT = "c2s"  # a client's stream to us
    SERVER_IN = "s2s-in"  # a peer server's stream to us (federation)
    SERVER_OUT = "s2s-out"  # our stream to a peer server
    COMPONENT = "component"  # an external component (XEP-0114)


@dataclass(frozen=True, slots=True)
class Profile:
    """The kind of stream: its role, content namespace and state table (which element each state takes)."""

    role: Role
    namespace: str
    accepts: dict[State, frozenset[str]]
    stanzas: frozenset[str]
    extensions: frozenset[str]

    def expect(self, state: State, tag: str) -> None:
        """Raise the stream error RFC 6120 asks for when `tag` is not acceptable in `state`."""
        xs.expect(state, tag, self.extensions, accepts=self.accepts, stanzas=self.stanzas)


C2S = Profile(Role.CLIENT, NS_CLIENT, xs.ACCEPTS, xs.STANZAS, xs.READY_EXTENSIONS)
COMPONENT = Profile(Role.COMPONENT, NS_COMPONENT, xc.ACCEPTS, xc.STANZAS, frozenset())
"""XEP-0114: `hosts` are the component domains configured; one `<handshake/>` instead of SASL and bind."""


@dataclass(frozen=True, slots=True)
class SmPolicy:
    """Stream management as configured: the unacknowledged queue's bound and the resumption window."""

    max_queue: int
    resume_timeout: float


@dataclass(frozen=True, slots=True)
class Offer:
    """What the stream offers in its current state; the driver builds it from configuration, the
    host's modules and the connection (the machine writes the features and holds the client to them)."""

    starttls: bool = False  # not encrypted yet and TLS can start
    starttls_required: bool = False
    encryption_required: bool = False  # no authentication before TLS on this connection
    mechanisms: tuple[str, ...] = ()
    sasl2: bool = False
    bind2: tuple[str, ...] | None = None  # what Bind 2 may enable inline; None: no Bind 2
    fast: tuple[str, ...] = ()  # FAST token mechanisms (XEP-0484), SASL2 only
    channel_bindings: tuple[str, ...] | None = None  # XEP-0440, best first; None: not announced
    sm: SmPolicy | None = None
    csi: bool = False
    legacy_session: bool = False
    extra: tuple[etree._Element, ...] = field(default=())  # features of the host's modules


NO_OFFER = Offer()


class LocalProtocolError(Exception):
    """The driver used the machine wrongly (a bug on our side, not the peer's)."""


def _new_id() -> str:
    return secrets.token_hex(8)


class StreamMachine:
    """One stream's state, negotiation and stream-management counters, sans IO."""

    __slots__ = (
        "_announce",
        "_attempts",
        "_inbox",
        "_jid_text",
        "_out",
        "_sasl2",
        "header_sent",
        "host",
        "hosts",
        "jid",
        "lang",
        "new_id",
        "offer",
        "profile",
        "sm",
        "state",
        "stream_id",
        "user_agent",
        "user_agent_software",
        "username",
        "waiting",
    )

    def __init__(
        self, profile: Profile, hosts: Collection[str], *, new_id: Callable[[], str] = _new_id
    ) -> None:
        self.profile = profile
        self.hosts = hosts  # the names we serve (a live view: reloads add and remove hosts)
        self.new_id = new_id
        self.state = State.CONNECTED
        self.stream_id = new_id()
        self.header_sent = False
        self.host: str | None = None
        self.lang: str | None = None  # the stream's xml:lang (RFC 6120 §4.7.4)
        self.username: str | None = None
        self.jid: JID | None = None
        self._jid_text = ""
        self.user_agent: str | None = None  # SASL2 <user-agent id=.../>
        self.user_agent_software = ""  # SASL2 <user-agent>: "<software> on <device>", as the client says
        self.offer = NO_OFFER
        self.sm: sm.StreamManagement | None = None  # once the client enabled stream management
        self.waiting: object | None = None  # the async effect whose feedback is due
        self._inbox: deque[Event | StreamError] = deque()
        self._out: deque[fx.Effect] = deque()
        self._attempts = 0
        self._sasl2: etree._Element | None = None  # the <authenticate/> of the SASL2 exchange running
        self._announce = False  # Bind 2 bound during SASL2: announce after the features

    def __repr__(self) -> str:
        return f"<StreamMachine {self.profile.role.value} {self.jid or self.host} {self.state.value}>"

    # -- input ----------------------------------------------------------------------------------

    def receive(self, events: Iterable[Event]) -> int:
        """Queue parsed events; returns how many wait (the driver pauses reading past its limit)."""
        if self.state is State.CLOSED:
            return 0
        self._inbox.extend(events)
        return len(self._inbox)

    def receive_error(self, error: StreamError) -> None:
        """The parser rejected the input: the stream fails after the events already queued."""
        if self.state is not State.CLOSED:
            self._inbox.append(error)

    @property
    def backlog(self) -> int:
        return len(self._inbox)

    # -- effects --------------------------------------------------------------------------------

    def take_effect(self) -> fx.Effect | None:
        """The next effect already decided, without handling more input."""
        out = self._out
        return out.popleft() if out else None

    def next_effect(self) -> fx.Effect | None:
        """The next effect: one already decided, else what the next input event asks for; None when
        there is nothing to do until more input (or the feedback of an async effect) arrives."""
        out = self._out
        if out:
            return out.popleft()
        if self.waiting is not None:
            if self.state is State.CLOSED:
                return None
            raise LocalProtocolError(f"{self.waiting!r} is waiting for its feedback")
        inbox = self._inbox
        while inbox and self.state is not State.CLOSED:
            item = inbox.popleft()
            if self.state is State.READY and item.__class__ is Stanza:
                tag = item.element.tag  # type: ignore[union-attr]
                if tag in self.profile.stanzas:  # the hot path: a stanza on a bound stream
                    try:
                        if self.profile is COMPONENT:
                            item = self._component_stanza(item.element)  # type: ignore[union-attr]
                            self.waiting = item
                            return item
                        if self._stanza(item.element):  # type: ignore[union-attr]
                            self.waiting = item
                            return item  # type: ignore[return-value]
                    except StreamError as err:
                        self.stream_error(err)
                    if out:
                        return out.popleft()
                    continue
            try:
                self._handle(item)
            except StreamError as err:
                self.stream_error(err)
            if out:
                return out.popleft()
        return None

    def _handle(self, item: Event | StreamError) -> None:
        if isinstance(item, StreamError):
            raise item
        if isinstance(item, Stanza):
            element = item.element
            self.profile.expect(self.state, element.tag)
            if self.state is State.READY:
                self._stream_element(element)
            else:
                self._negotiate(element)
        elif isinstance(item, StreamOpen):
            self._stream_open(item)
        elif isinstance(item, StreamClose):
            self.close()

    def _push(self, effect: fx.Effect) -> None:
        self._out.append(effect)

    def _wait(self, effect: fx.Effect) -> None:
        self._out.append(effect)
        self.waiting = effect

    def _feedback(self, expected: type | object) -> bool:
        """Check a feedback call against the effect waiting; False when the stream closed meanwhile."""
        if self.state is State.CLOSED:
            self.waiting = None
            return False
        waiting = self.waiting
        if waiting is not expected and waiting.__class__ is not expected:
            raise LocalProtocolError(f"unexpected feedback while waiting for {waiting!r}")
        self.waiting = None
        return True

    # -- stream header and features -------------------------------------------------------------

    def _stream_open(self, event: StreamOpen) -> None:
        if self.profile is COMPONENT:
            self._component_open(event)
            return
        attrs = event.attrs
        to = attrs.get("to", "")
        name = to if to in self.hosts else _domain(to)  # the usual case: exactly a host's name
        known = bool(name) and name in self.hosts and (self.host is None or name == self.host)
        self._header(name if known else self.default_host(), attrs)
        if self.state not in _RESTARTABLE:
            raise StreamError.not_authorized("Stream restarted at the wrong time")
        if event.default_namespace != self.profile.namespace:
            raise StreamError.invalid_namespace(f"The content namespace must be {self.profile.namespace}")
        major = attrs.get("version", "").partition(".")[0]
        if not major.isdigit() or int(major) != 1:
            raise StreamError.unsupported_version("Only XMPP 1.0 streams are supported")
        if not known:
            raise StreamError.host_unknown(f"This server does not serve '{to}'")
        self.host = name
        self.lang = attrs.get(XML_LANG)
        if self.state is State.CONNECTED:
            self.state = State.UNAUTHENTICATED
        self._wait(fx.FEATURES)

    def default_host(self) -> str:
        return next(iter(self.hosts), "localhost")

    def _header(self, host: str, initial: dict[str, str] | None) -> None:
        """RFC 6120 §4.7.2 'to' = the client's 'from'; §4.7.5 the lower version (none if none); a new id."""
        self.stream_id = self.new_id()
        to = initial.get("from") if initial else None
        if to:
            try:
                JID.parse(to)
            except JIDError:
                to = None
        self._push(fx.OpenStream(host, self.stream_id, to or None, response_version(initial)))
        self.header_sent = True

    def features(self, offer: Offer) -> None:
        """Feedback to FEATURES: write the features this offer allows in the current state."""
        if not self._feedback(fx.FEATURES):
            return
        self.offer = offer
        children: list[etree._Element] = []
        state = self.state
        if state is State.UNAUTHENTICATED:
            if offer.starttls:
                children.append(xs.starttls_feature(offer.starttls_required))
            if offer.mechanisms:
                names = list(offer.mechanisms)
                children.append(xs.mechanisms_feature(names))
                if offer.sasl2:
                    children.append(xs.sasl2_feature(
                        names, resume=offer.sm is not None,
                        bind_features=list(offer.bind2) if offer.bind2 is not None else None,
                        fast=list(offer.fast),
                    ))
                if offer.channel_bindings is not None:
                    children.append(xs.channel_binding_feature(list(offer.channel_bindings)))
        elif state is State.AUTHENTICATED:
            children.append(xs.bind_feature())
            if offer.legacy_session:
                children.append(xs.session_feature())
        if state in (State.AUTHENTICATED, State.READY):
            if offer.sm is not None and self.sm is None:
                children.append(sm.feature())
            if offer.csi:
                children.append(xs.csi_feature())
        children.extend(offer.extra)
        self._push(fx.Write(xs.features_element(children)))
        if self._announce:
            self._announce = False
            self._push(fx.BOUND)

    # -- negotiation ----------------------------------------------------------------------------

    def _negotiate(self, element: etree._Element) -> None:
        tag = element.tag
        if tag == xc.HANDSHAKE:
            self.state = State.AUTHENTICATING
            self._wait(fx.Handshake(element.text or ""))
        elif tag == xs.STARTTLS:
            self._starttls()
        elif tag in (xs.AUTH, xs.AUTHENTICATE):
            self._authenticate(element)
        elif tag in (xs.RESPONSE, xs.ABORT, xs.SASL2_RESPONSE, xs.SASL2_ABORT):
            self._respond(element)
        elif tag == xs.IQ:
            self._negotiation_iq(element)
        elif tag == sm.RESUME:
            if self.offer.sm is None:
                self._push(fx.Write(sm.failed("feature-not-implemented")))
            else:
                self._wait(fx.Resume(element))
        elif tag == sm.ENABLE:
            self._push(fx.Write(sm.failed("unexpected-request")))  # XEP-0198 §3: bind first

    def _starttls(self) -> None:
        if not self.offer.starttls:
            self._push(fx.Write(TLS_FAILURE))
            self.close()
            return
        self._push(fx.Write(TLS_PROCEED))
        self._inbox.clear()  # anything pipelined after <starttls/> is discarded (RFC 6120 §5.4.3.3)
        self._push(fx.START_TLS)

    def _authenticate(self, element: etree._Element) -> None:
        """`<auth/>` (RFC 6120) or `<authenticate/>` (XEP-0388): check the mechanism, then let the
        driver run the exchange."""
        sasl2 = element if element.tag == xs.AUTHENTICATE else None
        mechanism = element.get("mechanism", "")
        offer = self.offer
        if sasl2 is not None:
            if not offer.sasl2:
                raise StreamError.unsupported_stanza_type("SASL2 is not offered here")
            agent = sasl2.find(f"{{{NS_SASL2}}}user-agent")
            self.user_agent = agent.get("id") if agent is not None else None
            self.user_agent_software = _software(agent)
        if mechanism not in offer.mechanisms and (sasl2 is None or mechanism not in offer.fast):
            if offer.encryption_required:
                self._sasl_failure(sasl2, "encryption-required", "Use STARTTLS first")
            else:
                self._sasl_failure(sasl2, "invalid-mechanism")
            return
        if sasl2 is None:
            text = element.text
        else:
            text = sasl2.findtext(f"{{{NS_SASL2}}}initial-response")
            if text is None:
                text = ""  # SASL2: no <initial-response/> means none, not an empty one
        self._sasl2 = sasl2
        self.state = State.AUTHENTICATING
        self._wait(fx.Authenticate(mechanism, text, sasl2, offer.mechanisms))

    def _respond(self, element: etree._Element) -> None:
        """`<response/>` or `<abort/>` (either profile) to the challenge outstanding."""
        tag = element.tag
        running = self.state is State.AUTHENTICATING
        request = self._sasl2 if running else None
        is_sasl2 = tag in (xs.SASL2_RESPONSE, xs.SASL2_ABORT)
        if not running or tag in (xs.ABORT, xs.SASL2_ABORT) or (request is not None) != is_sasl2:
            self.state = State.UNAUTHENTICATED
            self._sasl_failure(request, "aborted")
            return
        self._wait(fx.SaslResponse(element.text))

    def _sasl_failure(self, request: etree._Element | None, condition: str, text: str = "") -> None:
        if self.state is State.AUTHENTICATING:
            self.state = State.UNAUTHENTICATED
        if request is None:
            self._push(fx.Write(xs.sasl_element("failure", None, condition, text)))
        else:
            self._push(fx.Write(xs.sasl2_failure(condition, text)))

    def sasl_challenge(self, challenge: bytes) -> None:
        """Feedback: the mechanism wants another round."""
        if not self._feedback_sasl():
            return
        if self._sasl2 is None:
            self._push(fx.Write(xs.sasl_element("challenge", challenge)))
        else:
            self._push(fx.Write(etree.tostring(xs.sasl2_element("challenge", challenge))))

    def sasl_failure(self, condition: str, text: str = "", *, counted: bool = True) -> None:
        """Feedback: the exchange failed; `counted` failures end the stream after three (RFC 6120 §6.4.5)."""
        if not self._feedback_sasl():
            return
        self._sasl_failure(self._sasl2, condition, text)
        self._sasl2 = None
        if counted:
            self._attempts += 1
            if self._attempts >= MAX_AUTH_ATTEMPTS:
                self.stream_error(StreamError.policy_violation("Too many failed authentication attempts"))

    def sasl_success(self, jid: JID, additional: bytes = b"") -> None:
        """Feedback: authenticated as `jid`. SASL restarts the stream; SASL2 goes on to `Sasl2Success`."""
        if not self._feedback_sasl():
            return
        self.username = jid.local
        self.state = State.AUTHENTICATED
        request, self._sasl2 = self._sasl2, None
        if request is None:
            self._push(fx.Write(xs.sasl_element("success", additional or None)))
            self._inbox.clear()
            self._push(fx.RESTART)
            return
        self._wait(fx.Sasl2Success(jid, additional, request))

    def _feedback_sasl(self) -> bool:
        if self.state is State.CLOSED:
            self.waiting = None
            return False
        if not isinstance(self.waiting, fx.Authenticate | fx.SaslResponse):
            raise LocalProtocolError(f"SASL feedback while waiting for {self.waiting!r}")
        self.waiting = None
        return True

    def sasl2_done(self, success: bytes, *, resumed: bool) -> None:
        """Feedback to Sasl2Success: write `<success/>`; the stream goes on without a restart, with
        new features, or (resumed) with none, its session taken over by the one resumed."""
        if not self._feedback(fx.Sasl2Success):
            return
        self._push(fx.Write(success))
        if resumed:
            self._push(fx.Write(xs.features_element([])))
        else:
            self._wait(fx.FEATURES)

    # -- external components (XEP-0114) ------------------------------------------------------------

    def _component_open(self, event: StreamOpen) -> None:
        """A component names its domain in 'to'; no version and no features (XEP-0114 §3)."""
        to = event.attrs.get("to", "")
        known = to in self.hosts
        self._header(to if known else self.default_host(), event.attrs)
        if self.state is not State.CONNECTED:
            raise StreamError.not_authorized("Stream restarted at the wrong time")
        if event.default_namespace != NS_COMPONENT:
            raise StreamError.invalid_namespace(f"The content namespace must be {NS_COMPONENT}")
        if not known:
            raise StreamError.host_unknown(f"No component '{to}' is configured here")
        self.host = to
        self.state = State.UNAUTHENTICATED

    def handshake_accepted(self) -> None:
        """Feedback to Handshake: the digest matched and the domain is ours to route: stanzas flow."""
        if not self._feedback(fx.Handshake):
            return
        assert self.host is not None
        self.jid = JID.make(None, self.host, None)
        self._jid_text = self.host
        self.state = State.READY
        self._push(fx.Write(xc.HANDSHAKE_OK))

    def handshake_refused(self, error: StreamError) -> None:
        """Feedback to Handshake: a wrong digest (not-authorized) or the domain already connected (conflict)."""
        if self._feedback(fx.Handshake):
            self.stream_error(error)

    def _component_stanza(self, element: etree._Element) -> Stanza:
        """Check a component's stanza (from its own domain, to someone) and hand it on in jabber:client."""
        try:
            sender = JID.parse(element.get("from", ""))
            JID.parse(element.get("to", ""))
        except JIDError:
            raise StreamError.improper_addressing("A component's stanza needs valid 'from' and 'to'") from None
        if sender.domain != self.host:
            raise StreamError.invalid_from(f"A component may only send from {self.host}")
        return Stanza(xc.to_client(element))

    # -- pre-bind IQs and resource binding (RFC 6120 §7) ----------------------------------------

    def _negotiation_iq(self, element: etree._Element) -> None:
        if self.state is not State.AUTHENTICATED:
            self._push(fx.PreauthIq(element))  # before authentication only pre-auth handlers answer
            return
        if element.get("type") == "set" and len(element) == 1 and element[0].tag == BIND:
            assert self.username is not None and self.host is not None
            requested = element[0].findtext(f"{{{NS_BIND}}}resource")
            resource = (requested or "").strip() or f"parlour-{self.new_id()[:8]}"
            try:
                jid = JID.make(self.username, self.host, resource)
            except JIDError:
                self.reply_error(element, StanzaError.bad_request("The requested resource is not valid"))
                return
            self._wait(fx.Bind(element, jid))
            return
        self.reply_error(element, StanzaError.not_authorized("Bind a resource first"))

    def bound(self, jid: JID, iq: etree._Element | None = None) -> None:
        """Feedback to Bind (with its IQ), or a Bind 2 during SASL2 (without): the stream is ready."""
        if self.state is State.CLOSED:
            self.waiting = None
            return
        if iq is not None:
            self._feedback(fx.Bind)
        elif not isinstance(self.waiting, fx.Sasl2Success):
            raise LocalProtocolError("Bind 2 outside a SASL2 success")
        self.jid = jid
        self._jid_text = str(jid)
        self.state = State.READY
        if iq is None:
            self._announce = True
            return
        reply = etree.Element(xs.IQ, nsmap={None: NS_CLIENT})
        reply.set("type", "result")
        reply.set("id", iq.get("id", ""))
        bind = etree.SubElement(reply, BIND, nsmap={None: NS_BIND})
        etree.SubElement(bind, f"{{{NS_BIND}}}jid").text = self._jid_text
        self._push(fx.Send(reply))
        self._push(fx.BOUND)

    def bind_failed(self, iq: etree._Element, error: StanzaError) -> None:
        """Feedback to Bind: the resource is taken or the account has too many."""
        if self._feedback(fx.Bind):
            self.reply_error(iq, error)

    def reply_error(self, element: etree._Element, error: StanzaError) -> None:
        """Answer a stanza with an error (never an error with an error; before binding, without addresses)."""
        if element.get("type") == "error" or self.state is State.CLOSED:
            return
        reply = error_reply(element, error)
        if self.state is not State.READY:
            reply.attrib.pop("to", None)
            reply.attrib.pop("from", None)
        self._push(fx.Send(reply))

    # -- a bound stream -------------------------------------------------------------------------

    def _stanza(self, element: etree._Element) -> bool:
        """Check and stamp a stanza from the client; True: route it (feedback `stanza_handled`)."""
        me = self._jid_text
        claimed = element.get("from")
        if claimed is not None and claimed != me:
            try:
                claimed_jid = JID.parse(claimed)
            except JIDError:
                claimed_jid = None
            jid = self.jid
            if claimed_jid is None or jid is None or claimed_jid not in (jid, jid.bare()):
                raise StreamError.invalid_from("The 'from' address is not yours")
        element.set("from", me)
        lang = self.lang
        if lang and XML_LANG not in element.attrib:
            element.set(XML_LANG, lang)  # RFC 6120 §8.1.5: the stream's language, when the stanza has none
        tag = element.tag
        if tag == xs.IQ:
            iq_type = element.get("type")
            if iq_type not in _IQ_TYPES or element.get("id") is None:
                self._answered(element, StanzaError.bad_request("An IQ needs an 'id' and a valid 'type'"))
                return False
            if iq_type == "set" and len(element) == 1:
                child = element[0].tag
                if child == LEGACY_SESSION:
                    reply = etree.Element(xs.IQ, nsmap={None: NS_CLIENT})
                    reply.set("type", "result")
                    reply.set("id", element.get("id", ""))
                    self._push(fx.Send(reply))
                    self._count()
                    return False
                if child == BIND:
                    self._answered(element, StanzaError.not_allowed("A resource is already bound"))
                    return False
            if iq_type in ("result", "error") and element.get("to") in (None, self.host):
                self._push(fx.IqResponse(element))
                self._count()
                return False
        elif tag == xs.PRESENCE and element.get("type") not in _PRESENCE_TYPES:
            self._answered(element, StanzaError.bad_request("Unknown presence type"))
            return False
        return True

    def _answered(self, element: etree._Element, error: StanzaError) -> None:
        self.reply_error(element, error)
        self._count()

    def _count(self) -> None:
        state = self.sm
        if state is not None:
            state.handled += 1

    def stanza_handled(self) -> None:
        """Feedback to a routed `Stanza`: whatever it caused (storage included) is done, count it."""
        if self.state is State.CLOSED:
            self.waiting = None
            return
        if self.waiting.__class__ is not Stanza:
            raise LocalProtocolError(f"stanza_handled while waiting for {self.waiting!r}")
        self.waiting = None
        state = self.sm
        if state is not None:
            state.handled += 1  # only now: acknowledged means done

    def _stream_element(self, element: etree._Element) -> None:
        """A non-stanza element on a bound stream: <enable/>, <r/>, <a/>, <resume/>, <active/>, <inactive/>."""
        tag = element.tag
        state = self.sm
        if tag == sm.REQUEST:
            if state is None:
                raise StreamError.unsupported_stanza_type("Stream management is not enabled")
            self._push(fx.Write(sm.ack(state.handled)))
        elif tag == sm.ACK:
            if state is None:
                raise StreamError.unsupported_stanza_type("Stream management is not enabled")
            state.acknowledge(element.get("h"))
        elif tag == sm.ENABLE:
            if state is not None or self.offer.sm is None:
                self._push(fx.Write(sm.failed("unexpected-request" if state else "feature-not-implemented")))
            else:
                self._push(fx.Write(self.enable_sm(element)))
        elif tag == sm.RESUME:
            self._push(fx.Write(sm.failed("unexpected-request")))  # this stream is bound already
        elif self.offer.csi:
            self._push(fx.ClientState(tag == xs.CSI_ACTIVE))
        else:
            raise StreamError.unsupported_stanza_type("Client state indication is not offered here")

    def enable_sm(self, element: etree._Element) -> bytes:
        """Start counting (XEP-0198); with resume='true' (and resumption configured) the session may
        outlive its connection. Returns the `<enabled/>` to send (inline in Bind 2, or on its own)."""
        policy = self.offer.sm
        if policy is None:
            raise LocalProtocolError("stream management is not offered")
        resumable = element.get("resume") in ("true", "1") and policy.resume_timeout > 0
        state = self.sm = sm.StreamManagement(
            self.new_id() + self.new_id(), resumable=resumable, max_queue=policy.max_queue
        )
        self._push(fx.SM_ENABLED)
        if not resumable:
            return sm.enabled(None, max_seconds=None)
        timeout = int(policy.resume_timeout)
        wanted = element.get("max", "")
        if wanted.isdigit() and 0 < int(wanted) < timeout:
            timeout = int(wanted)
        return sm.enabled(state.id, max_seconds=timeout)

    @property
    def handled(self) -> int:
        """Stanzas handled from the client so far (the `h` we report), 0 without stream management."""
        return self.sm.handled if self.sm is not None else 0

    # -- resumption (XEP-0198 §5) ---------------------------------------------------------------

    def resume_failed(self, failed: bytes) -> None:
        """Feedback to Resume: nothing to resume; write the `<failed/>` the driver composed."""
        if self._feedback(fx.Resume):
            self._push(fx.Write(failed))

    def resumed(self, previd: str, handled: int) -> None:
        """Feedback to Resume: found; write `<resumed/>` (then the old stream `adopt`s this one)."""
        if self._feedback(fx.Resume):
            self._push(fx.Write(sm.resumed(previd, handled)))

    def adopt(self, newcomer: StreamMachine) -> list[bytes]:
        """Resumption: this stream goes on over `newcomer`'s connection, which ends quietly (its
        input not yet handled comes along). Returns what to resend: everything unacknowledged,
        then an `<r/>` when there is any."""
        self._inbox.extend(newcomer._inbox)
        newcomer._inbox.clear()
        newcomer._end(disconnect=False)
        self.header_sent = True
        state = self.sm
        if state is None:
            return []
        state.requested_at = 0.0
        resend = state.unacked_stanzas()
        if resend:
            resend.append(sm.REQUEST_BYTES)
        return resend

    # -- closing --------------------------------------------------------------------------------

    def stream_error(self, error: StreamError) -> None:
        """Write a stream error and close (RFC 6120 §4.9); a header first if none went out."""
        if self.state is State.CLOSED:
            return
        if not self.header_sent:
            self._header(self.default_host(), None)
        self._push(fx.SendStreamError(error))
        self.close()

    def close(self) -> None:
        """Close our stream and the connection (the peer closed its stream, or we end it)."""
        if self.state is State.CLOSED:
            return
        if self.header_sent:
            self._push(fx.CLOSE_STREAM)
        self._end(disconnect=True)

    def connection_lost(self) -> bool:
        """The connection is gone: True if the session should wait for resumption (XEP-0198),
        else it ends here."""
        if self.state is State.CLOSED:
            return False
        state = self.sm
        if state is not None and state.resumable and self.state is State.READY:
            return True
        self._end(disconnect=False)
        return False

    def finish(self) -> None:
        """End without a word (a resumption window ran out)."""
        if self.state is not State.CLOSED:
            self._end(disconnect=False)

    def _end(self, *, disconnect: bool) -> None:
        was_ready = self.state is State.READY
        self.state = State.CLOSED
        self.waiting = None
        self._inbox.clear()
        self._push(fx.Closed(was_ready, disconnect))


def _domain(to: str) -> str:
    if not to:
        return ""
    try:
        return JID.parse(to).domain
    except JIDError:
        return ""


def response_version(initial: dict[str, str] | None) -> str | None:
    """RFC 6120 §4.7.5: the client's version or ours (1.0), whichever is lower; none when it sent none."""
    if initial is None:
        return "1.0"
    theirs = initial.get("version")
    if theirs is None:
        return None
    major, _, minor = theirs.partition(".")
    if major.isdigit() and minor.isdigit() and (int(major), int(minor)) < (1, 0):
        return f"{int(major)}.{int(minor)}"
    return "1.0"


__all__ = [
    "C2S", "COMPONENT", "NO_OFFER", "LocalProtocolError", "Offer", "Profile", "Role", "SmPolicy", "State",
    "StreamMachine",
]


def _software(agent: etree._Element | None) -> str:
    """XEP-0388's <software/> and <device/>, as "Conversations on Pixel 7" (at most 100 characters)."""
    if agent is None:
        return ""
    software = (agent.findtext(f"{{{NS_SASL2}}}software") or "").strip()
    device = (agent.findtext(f"{{{NS_SASL2}}}device") or "").strip()
    text = f"{software} on {device}" if software and device else software or device
    return " ".join(text.split())[:100]
