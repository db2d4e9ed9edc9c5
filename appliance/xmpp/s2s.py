"""Server-to-server streams (RFC 6120, XEP-0220), sans IO: both directions' negotiation and addressing.

`ServerStream` is fed parsed events (`receive`) and yields effects (`next_effect`), like the c2s
`StreamMachine`, and shares its effect vocabulary (`Write`, `START_TLS`, `SendStreamError`, `Closed`,
the parser's `Stanza` for "route this"). It is a class of its own rather than a profile of that machine
because s2s negotiation is not the c2s one: the outgoing side *initiates* (writes the header, reads the
features, chooses STARTTLS, SASL EXTERNAL or dialback), and authentication is per domain pair, many per
stream (dialback piggybacking), not one JID per stream.

Incoming (we receive): header -> features (STARTTLS, then SASL EXTERNAL when the peer showed a
certificate, and dialback) -> `<auth mechanism='EXTERNAL'/>` (effect `CheckExternal`) or `<db:result/>`
(effect `VerifyDialback`); each success authorizes one (remote, local) pair (`Authorized`). `<db:verify/>`
questions (we are the authoritative server) are answered on the spot from the dialback secret.
Outgoing (we initiate): header -> features -> STARTTLS -> restart -> EXTERNAL if offered, else
`<db:result/>` -> `Authorized`; `<db:verify/>` may be sent (`verify`) once the stream is negotiated and
the answers come back as `VerifyAnswer`.

Bidirectional streams (XEP-0288): the receiving side offers `<bidi/>`; the initiating side asks for it
after TLS and before authenticating, and from then on stanzas may also flow back, from each authorized
pair's local domain to its remote one, on the same connection (`may_send`).

Stream Management (XEP-0198) on server streams: the receiving side offers `<sm/>`, counts the stanzas it
handled once `<enable/>` came and answers `<r/>`; it remembers the count of a stream that ended so the
sender can `<resume/>` (the driver keeps that memory: effect `ResumeCheck`). The sending side, once its
first domain is authorized, asks to `<enable resume='true'/>` or to `<resume/>` an earlier stream, and
reports the peer's counts (`SmStarted`, `Acked`, `SmFailed`); which stanzas those cover is the driver's
bookkeeping, since on an s2s stream all stanzas go one way.

Stanzas flow once a pair is authorized (RFC 6120 §8.1.1.2, §8.1.2.2): one before any pair is a
`<not-authorized/>` (§4.9.3.12); one with a missing, empty or malformed 'from' or 'to' an
`<improper-addressing/>` (§4.9.3.7); one whose 'from' domain is not authorized on this stream an
`<invalid-from/>` (§4.9.3.9); one to a domain we do not serve a `<host-unknown/>` (§4.9.3.6). One from an
authorized remote to another of our domains is accepted (peers send so). On our side a stanza for a pair
we are not authorized for is refused before it is written.
"""

from __future__ import annotations

import base64
import binascii
import enum
import secrets
from collections import deque
from collections.abc import Callable, Collection, Iterable
from copy import deepcopy
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from lxml import etree

from appliance.xmpp import dialback as db
from appliance.xmpp import effects as fx
from appliance.xmpp import sm
from appliance.xmpp.errors import StreamError
from appliance.xmpp.jid import JID, JIDError
from appliance.xmpp.ns import (
    NS_BIDI,
    NS_BIDI_FEATURE,
    NS_DIALBACK,
    NS_DIALBACK_FEATURE,
    NS_SASL,
    NS_SERVER,
    NS_SM,
    NS_STREAM,
    NS_TLS,
)
from appliance.xmpp.parser import Event, Stanza, StreamClose, StreamOpen

STARTTLS = f"{{{NS_TLS}}}starttls"
PROCEED = f"{{{NS_TLS}}}proceed"
TLS_FAILURE = f"{{{NS_TLS}}}failure"
FEATURES = f"{{{NS_STREAM}}}features"
STREAM_ERROR = f"{{{NS_STREAM}}}error"
AUTH = f"{{{NS_SASL}}}auth"
ABORT = f"{{{NS_SASL}}}abort"
SUCCESS = f"{{{NS_SASL}}}success"
FAILURE = f"{{{NS_SASL}}}failure"
MECHANISMS = f"{{{NS_SASL}}}mechanisms"
STANZAS = frozenset(f"{{{NS_SERVER}}}{name}" for name in ("message", "presence", "iq"))
STREAM_CLOSE = b"</stream:stream>"
SM_FEATURE = f"{{{NS_SM}}}sm"
BIDI = f"{{{NS_BIDI}}}bidi"
BIDI_FEATURE = f"{{{NS_BIDI_FEATURE}}}bidi"
SM_ENABLED = f"{{{NS_SM}}}enabled"
SM_RESUMED = f"{{{NS_SM}}}resumed"
SM_FAILED = f"{{{NS_SM}}}failed"
SM_ELEMENTS = sm.ELEMENTS | {SM_ENABLED, SM_RESUMED, SM_FAILED}


class Phase(enum.Enum):
    """Where a server stream is in its life."""

    CONNECTED = "connected"  # waiting for (incoming) or having sent (outgoing) the stream header
    NEGOTIATING = "negotiating"  # features sent or awaited: TLS, SASL, dialback
    TLS = "tls"  # the driver runs the TLS handshake
    SASL = "sasl"  # an EXTERNAL exchange is running
    READY = "ready"  # negotiation over: dialback for more pairs and stanzas between authorized pairs
    CLOSING = "closing"  # we sent `</stream:stream>`: what the peer sent before it reads that still counts
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Policy:
    """What this stream may do, from the [s2s] settings for the remote domain and the connection."""

    tls_available: bool  # we have a certificate (incoming) / may start TLS (outgoing)
    require_tls: bool
    dialback: bool  # Server Dialback allowed (the certificate alone need not validate)
    external: bool = False  # incoming: offer SASL EXTERNAL (the peer presented a CA-valid certificate)
    stream_management: bool = True  # XEP-0198: offer it (incoming) / use it when offered (outgoing)
    bidi: bool = True  # XEP-0288: offer it (incoming) / ask for it when offered (outgoing)


# -- effects of server streams ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckExternal:
    """Incoming SASL EXTERNAL for `remote`: does the peer's certificate name it? (feedback `external_result`)"""

    remote: str
    local: str


@dataclass(frozen=True, slots=True)
class VerifyDialback:
    """Incoming `<db:result/>`: verify `key` with the authoritative server of `remote` (or accept the
    peer's valid certificate for it); feedback `dialback_result`."""

    remote: str
    local: str
    stream_id: str
    key: str


@dataclass(frozen=True, slots=True)
class VerifyAnswer:
    """The authoritative server answered our `<db:verify/>` (outgoing stream); `error`: the condition of
    a dialback error instead of an answer (XEP-0220 §2.4)."""

    remote: str
    local: str
    stream_id: str
    valid: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Authorized:
    """Stanzas may now flow from `local` to `remote` (outgoing) or from `remote` to `local` (incoming)."""

    remote: str
    local: str
    method: str  # "external" or "dialback"


@dataclass(frozen=True, slots=True)
class Refused:
    """Outgoing: the remote refused `local` (dialback invalid, a dialback error, EXTERNAL failed with no
    fallback); `bounce`: the stanza error for what waits to go from `local` (XEP-0220 §2.1.3: an
    invalid key internal-server-error, a dialback error remote-server-timeout)."""

    local: str
    reason: str
    bounce: str = "remote-server-not-found"


@dataclass(frozen=True, slots=True)
class TlsNeeded:
    """Outgoing: TLS is required but the peer does not offer it (the stream closes)."""

    remote: str


@dataclass(frozen=True, slots=True)
class ResumeCheck:
    """Incoming `<resume/>`: how many stanzas of stream `previd` from `remote` did we handle? (feedback
    `resume_result`: the count, or None when that stream is unknown, expired or from someone else)"""

    previd: str
    remote: str


@dataclass(frozen=True, slots=True)
class SmStarted:
    """Outgoing: the peer counts our stanzas from now on; `handled` (when resumed) is how many of the
    earlier stream `sm_id` it had handled."""

    sm_id: str | None
    handled: int | None


@dataclass(frozen=True, slots=True)
class Acked:
    """Outgoing: the peer has handled `h` (modulo 2^32) stanzas of this stream management session."""

    h: int


@dataclass(frozen=True, slots=True)
class SmFailed:
    """Outgoing: the peer refused `<enable/>` (nothing is counted on this stream) or, `resuming`, the
    `<resume/>` (its count is lost; a fresh `<enable/>` went out, stanzas count from there)."""

    resuming: bool


def _new_id() -> str:
    return secrets.token_hex(12)


def header(*, from_: str | None, to: str | None, stream_id: str | None) -> bytes:
    """A jabber:server stream header with the dialback prefix declared (XEP-0220 §2.1) and the stream's
    default language (RFC 6120 §4.7.4: our stream errors and dialback answers are in English)."""
    attrs = "".join(f" {name}={quoteattr(value)}" for name, value in (("from", from_), ("to", to),
                                                                        ("id", stream_id)) if value)
    return (f"<?xml version='1.0'?><stream:stream xmlns='{NS_SERVER}' xmlns:stream='{NS_STREAM}' "
            f"xmlns:db='{NS_DIALBACK}' xml:lang='en'{attrs} version='1.0'>").encode()


class ServerStream:
    """One s2s stream, incoming or outgoing, sans IO."""

    def __init__(
        self,
        *,
        outgoing: bool,
        hosts: Collection[str],
        secret: bytes,
        policy: Policy,
        local: str | None = None,
        remote: str | None = None,
        secure: bool = False,
        new_id: Callable[[], str] = _new_id,
        resume: str | None = None,
    ) -> None:
        self.outgoing = outgoing
        self.hosts = hosts
        self.secret = secret
        self.policy = policy
        self.local = local  # outgoing: the host that opened the stream
        self.remote = remote  # outgoing: the peer's domain; incoming: the header's 'from' if any
        self.secure = secure  # TLS is up (direct TLS, or after STARTTLS)
        self.new_id = new_id
        self.phase = Phase.CONNECTED
        self.stream_id: str | None = None  # the id of the receiving side's header (ours when incoming)
        self.authenticated_external = False
        self.pairs: set[tuple[str, str]] = set()  # (remote, local) authorized pairs
        self.ended_cleanly = False  # the stream ended with `</stream:stream>` from the peer
        self.peer_error: str | None = None  # the condition of the stream error the peer ended it with
        self.pending_results: set[tuple[str, str]] = set()  # outgoing db:result sent, not answered
        self.verifying: set[tuple[str, str]] = set()  # incoming db:result being checked
        self.waiting: object | None = None
        self._inbox: deque[Event | StreamError] = deque()
        self._out: deque[object] = deque()
        self._verifies: list[bytes] = []  # outgoing db:verify held until the stream is negotiated
        self._piggyback: list[str] = []  # outgoing: more local hosts to authorize once negotiated
        self._features_seen = False
        # XEP-0198. Incoming: the id and count of a managed stream. Outgoing: `resume` is the earlier
        # stream to resume; `sm_requested` once <enable/> or <resume/> went out (stanzas count from there).
        self.sm_id: str | None = None
        self.sm_handled: int | None = None
        self.resume = resume
        self.sm_requested = False
        self._sm_offered = False
        self.bidi = False  # XEP-0288 in force: stanzas go both ways on this stream
        # Incoming, after SASL <success/>: `Authorized`, announced once the peer restarted the stream
        self._restart_pending: Authorized | None = None
        if outgoing:
            if local is None or remote is None:
                raise ValueError("an outgoing stream needs its local and remote domains")
            self._send_header()

    def __repr__(self) -> str:
        way = "out" if self.outgoing else "in"
        return f"<ServerStream {way} {self.local}<->{self.remote} {self.phase.value}>"

    # -- input and effects --------------------------------------------------------------------------

    def receive(self, events: Iterable[Event]) -> int:
        if self.phase is not Phase.CLOSED:
            self._inbox.extend(events)
        return len(self._inbox)

    def receive_error(self, error: StreamError) -> None:
        if self.phase is not Phase.CLOSED:
            self._inbox.append(error)

    def next_effect(self) -> object | None:
        """The next effect; None when nothing is to be done until input or feedback arrives."""
        out = self._out
        if out:
            return out.popleft()
        if self.waiting is not None:
            return None
        while self._inbox and self.phase is not Phase.CLOSED and self.waiting is None:
            item = self._inbox.popleft()
            try:
                self._handle(item)
            except StreamError as err:
                self.stream_error(err)
            if out:
                return out.popleft()
        return None

    def _push(self, effect: object) -> None:
        if self.phase is Phase.CLOSING and isinstance(effect, fx.Write):
            return  # after our `</stream:stream>` (an answer to the peer's <r/> or <db:verify/>)
        self._out.append(effect)

    def _wait(self, effect: object) -> None:
        self._out.append(effect)
        self.waiting = effect

    def _feedback(self, kind: type | object) -> bool:
        if self.phase is Phase.CLOSED:
            self.waiting = None
            return False
        if self.waiting is not kind and self.waiting.__class__ is not kind:
            raise RuntimeError(f"unexpected feedback while waiting for {self.waiting!r}")
        self.waiting = None
        return True

    def stream_error(self, error: StreamError) -> None:
        """Fail the stream: write the error, our close, and end."""
        if self.phase is Phase.CLOSED:
            return
        if self.phase is Phase.CLOSING:  # our close is written: nothing may follow it
            self._finish()
            return
        if self.stream_id is None and not self.outgoing:
            self._push(fx.Write(header(from_=next(iter(self.hosts), None), to=None, stream_id=self.new_id())))
        self._push(fx.SendStreamError(error))
        self._end()

    def close(self) -> None:
        """Close the stream politely (idle, shutdown); a managed incoming stream says first how many
        stanzas it handled, so the sender need not send those again. An authenticated stream then waits
        in CLOSING for the peer's `</stream:stream>` (RFC 6120 §4.4): stanzas the peer wrote before it
        read ours are still taken, and nothing more is written."""
        if self.phase in (Phase.CLOSED, Phase.CLOSING):
            return
        if self.sm_handled is not None:
            self._push(fx.Write(sm.ack(self.sm_handled)))
        if not self.pairs:
            self._end()
            return
        self._push(fx.Write(STREAM_CLOSE))
        self.phase = Phase.CLOSING

    def _peer_closed(self) -> None:
        """The peer's `</stream:stream>`: the answer to ours, or its own close, which we answer."""
        self.ended_cleanly = True
        if self.phase is Phase.CLOSING:
            self._finish()
            return
        if self.sm_handled is not None:
            self._push(fx.Write(sm.ack(self.sm_handled)))
        self._end()

    def _end(self) -> None:
        self._push(fx.Write(STREAM_CLOSE))
        self._finish()

    def _finish(self) -> None:
        self.phase = Phase.CLOSED
        self._inbox.clear()
        self._push(fx.Closed(was_ready=bool(self.pairs), disconnect=True))

    def _handle(self, item: Event | StreamError) -> None:
        if isinstance(item, StreamError):
            raise item
        if isinstance(item, StreamOpen):
            self._stream_open(item)
            if self._restart_pending is not None and self.phase is Phase.NEGOTIATING:
                # Our new header and features are written: stanzas may follow them (XEP-0288 bidi).
                self._push(self._restart_pending)
                self._restart_pending = None
        elif isinstance(item, StreamClose):
            self._peer_closed()
        elif isinstance(item, Stanza):
            if self.phase is Phase.CONNECTED:
                raise StreamError.not_authorized("The stream header comes first")
            self._element(item)

    # -- stream header ------------------------------------------------------------------------------

    def _send_header(self) -> None:
        self._push(fx.Write(header(from_=self.local, to=self.remote, stream_id=None)))

    def _stream_open(self, event: StreamOpen) -> None:
        attrs = event.attrs
        if self.phase not in (Phase.CONNECTED, Phase.NEGOTIATING):
            raise StreamError.not_authorized("Stream restarted at the wrong time")
        if self.outgoing:
            if event.default_namespace != NS_SERVER:
                raise StreamError.invalid_namespace("Expected a jabber:server stream")
            self.stream_id = attrs.get("id") or ""
            self.phase = Phase.NEGOTIATING
            self._features_seen = False
            return
        to = (attrs.get("to") or "").lower()
        local = to if to in self.hosts else None
        peer = attrs.get("from") or None
        named = peer is None or _is_domain(peer)
        self.stream_id = self.new_id()
        self._push(fx.Write(header(from_=local or next(iter(self.hosts), None), to=peer if named else None,
                                   stream_id=self.stream_id)))
        if event.default_namespace != NS_SERVER:
            raise StreamError.invalid_namespace("Expected a jabber:server stream")
        if not attrs.get("version", "").startswith("1."):
            # XEP-0220 streams without version='1.0' have no features; we require 1.0 (TLS first).
            raise StreamError.unsupported_version("Only XMPP 1.0 server streams are supported")
        if to and local is None:
            raise StreamError.host_unknown(f"This server does not serve '{to}'")
        if not named:
            # A 'from' that is no domain name names no peer to authenticate (Prosody answers the same).
            raise StreamError.improper_addressing("The header's 'from' is not a domain name")
        self.local = local
        if peer:
            self.remote = peer.lower()
        self.phase = Phase.NEGOTIATING
        self._push(fx.Write(self._features()))

    def _features(self) -> bytes:
        policy = self.policy
        parts: list[bytes] = []
        if not self.secure and policy.tls_available:
            required = b"<required/>" if policy.require_tls else b""
            parts.append(b"<starttls xmlns='" + NS_TLS.encode() + b"'>" + required + b"</starttls>")
        if not self.authenticated_external and (self.secure or not policy.require_tls):
            if self.secure and policy.external:
                parts.append(b"<mechanisms xmlns='" + NS_SASL.encode()
                             + b"'><mechanism>EXTERNAL</mechanism></mechanisms>")
            if policy.dialback:
                parts.append(b"<dialback xmlns='" + NS_DIALBACK_FEATURE.encode() + b"'><errors/></dialback>")
        if policy.stream_management and (self.secure or not policy.require_tls):
            parts.append(b"<sm xmlns='" + NS_SM.encode() + b"'/>")
        if policy.bidi and not self.bidi:
            parts.append(b"<bidi xmlns='" + NS_BIDI_FEATURE.encode() + b"'/>")
        return b"<stream:features>" + b"".join(parts) + b"</stream:features>"

    # -- elements -----------------------------------------------------------------------------------

    def _element(self, item: Stanza) -> None:
        element = item.element
        tag = element.tag
        if tag in STANZAS:
            self._stanza(item)
        elif tag == db.RESULT:
            self._result(element)
        elif tag == db.VERIFY:
            self._verify(element)
        elif tag in SM_ELEMENTS:
            self._stream_management(element)
        elif tag == STREAM_ERROR:
            error = StreamError.from_element(element)
            self.peer_error = error.condition
            if self.outgoing:
                self._push(Refused(self.local or "", f"stream error {error.condition}"))
            self._end()
        elif self.outgoing:
            self._outgoing_negotiation(element)
        else:
            self._incoming_negotiation(element)

    def _stanza(self, item: Stanza) -> None:
        if self.outgoing and not self.bidi:
            raise StreamError.unsupported_stanza_type("Stanzas go the other way on this stream")
        if not self.pairs:
            raise StreamError.not_authorized("Stanzas come after authentication")
        element = item.element
        sender = _domain(_address(element, "from"))
        target = _domain(_address(element, "to"))
        if (sender, target) not in self.pairs:
            if not any(remote == sender for remote, _ in self.pairs):
                raise StreamError.invalid_from(f"'{sender}' is not authenticated on this stream")
            # The sender proved its domain; a stanza to another of our domains is taken like Prosody and
            # ejabberd do (Prosody sends a reply to parlour.test over the stream it opened to
            # conference.parlour.test). A domain we do not serve is unknown here, as Prosody and ejabberd
            # answer too.
            if target not in self.hosts:
                raise StreamError.host_unknown(f"This server does not serve '{target}'")
        if self.sm_handled is not None:
            # Counted as it goes to the driver: an <r/> behind it is answered only after the driver
            # finished routing it (effects are carried out in order), so `h` covers handled stanzas only.
            self.sm_handled += 1
        self._push(item)

    # incoming negotiation: STARTTLS, SASL EXTERNAL

    def _incoming_negotiation(self, element: etree._Element) -> None:
        tag = element.tag
        if tag == STARTTLS and self.phase is Phase.NEGOTIATING and not self.secure and self.policy.tls_available:
            self._push(fx.Write(f"<proceed xmlns='{NS_TLS}'/>".encode()))
            self._inbox.clear()  # pipelined input after <starttls/> is discarded (RFC 6120 §5.4.3.3)
            self.phase = Phase.TLS
            self._wait(fx.START_TLS)
            return
        if tag == BIDI and self.phase is Phase.NEGOTIATING and self.policy.bidi \
                and (self.secure or not self.policy.require_tls):
            self.bidi = True  # no answer (XEP-0288 §2.2); stanzas may go back once a pair is authorized
            return
        if tag == AUTH and self.phase is Phase.NEGOTIATING:
            if element.get("mechanism") != "EXTERNAL" or not (self.secure and self.policy.external):
                self._push(fx.Write(_sasl_failure("invalid-mechanism")))
                return
            text = (element.text or "").strip()
            try:
                # "=" is an empty authzid (RFC 6120 §6.4.2); anything else is base64 with its padding
                authzid = "" if text in ("", "=") else base64.b64decode(text, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                self._push(fx.Write(_sasl_failure("incorrect-encoding")))
                return
            remote = (authzid or self.remote or "").lower()
            if not remote or self.local is None:
                self._push(fx.Write(_sasl_failure("invalid-authzid")))
                return
            self.phase = Phase.SASL
            self._wait(CheckExternal(remote, self.local))
            return
        if tag == ABORT and self.phase is Phase.NEGOTIATING:
            # RFC 6120 §6.4.4. EXTERNAL completes in one step, so an abort only ever crosses our
            # <failure/> (then it is answered here) or our <success/> (then it is dropped with the
            # pre-restart input in `external_result`); either way the stream goes on.
            self._push(fx.Write(_sasl_failure("aborted")))
            return
        raise StreamError.unsupported_stanza_type(f"Unexpected element {tag}")

    def tls_done(self, *, external: bool = False) -> None:
        """Feedback to START_TLS: the handshake succeeded; a new stream begins (the driver reset the
        parser). `external`: incoming, the peer showed a CA-valid certificate (SASL EXTERNAL is offered).
        Outgoing streams write their new header now."""
        if not self._feedback(fx.START_TLS):
            return
        self.secure = True
        if external:
            self.policy = Policy(self.policy.tls_available, self.policy.require_tls, self.policy.dialback, True)
        self.phase = Phase.CONNECTED if not self.outgoing else Phase.NEGOTIATING
        if self.outgoing:
            self._send_header()

    def external_result(self, ok: bool) -> None:
        """Feedback to CheckExternal."""
        effect = self.waiting
        if not self._feedback(CheckExternal):
            return
        assert isinstance(effect, CheckExternal)
        if not ok:
            self.phase = Phase.NEGOTIATING
            self._push(fx.Write(_sasl_failure("not-authorized")))
            return
        self.authenticated_external = True
        self.remote = effect.remote
        self.pairs.add((effect.remote, effect.local))
        # What the peer sent before it read <success/> belongs to the stream both sides now restart
        # (RFC 6120 §6.4.6): an <abort/> that crossed it, say.
        self._inbox.clear()
        self._push(fx.Write(f"<success xmlns='{NS_SASL}'/>".encode()))
        self.phase = Phase.CONNECTED  # the peer restarts the stream
        self._push(fx.RESTART)
        # Announced (and, on a bidirectional stream, written to) only once the restarted stream is open:
        # a stanza between <success/> and the peer's new header reaches the parser it discards (RFC 6120
        # §6.4.6), and the peer counts its pair as authorized only at our new features.
        self._restart_pending = Authorized(effect.remote, effect.local, "external")

    # incoming and outgoing: dialback

    def _result(self, element: etree._Element) -> None:
        remote, local = (element.get("from") or "").lower(), (element.get("to") or "").lower()
        if self.outgoing:
            kind = element.get("type")
            # The answer to our <db:result/>: 'to' is our host, 'from' the peer.
            pair = (remote, local)
            if pair not in self.pending_results:
                return  # an answer to nothing we asked: ignore (XEP-0220 §2.4)
            self.pending_results.discard(pair)
            if kind == "valid":
                self.pairs.add(pair)
                self.phase = Phase.READY
                self._start_sm()
                self._push(Authorized(remote, local, "dialback"))
            elif kind == "error":  # not fatal to the stream: other pairs go on (XEP-0220 §2.4)
                condition = db.error_condition(element)
                self._push(Refused(local, f"dialback error: {condition}", "remote-server-timeout"))
            else:
                self._push(Refused(local, "dialback refused", "internal-server-error"))
            return
        if self.phase not in (Phase.NEGOTIATING, Phase.READY) or self.stream_id is None:
            raise StreamError.not_authorized("Dialback before the stream is negotiated")
        if not self.secure and self.policy.require_tls:
            raise StreamError.policy_violation("TLS is required")
        if not remote or not (element.text or "").strip():
            raise StreamError.invalid_xml("A dialback request needs 'from', 'to' and a key")
        # Dialback errors, not stream errors: the stream may carry other domain pairs (XEP-0220 §2.2.1).
        if local not in self.hosts:
            self._push(fx.Write(db.error("result", from_=local, to=remote, condition="item-not-found")))
            return
        if not self.policy.dialback:  # a valid certificate is required of this domain
            self._push(fx.Write(db.error("result", from_=local, to=remote, condition="not-authorized")))
            return
        if (remote, local) in self.pairs or (remote, local) in self.verifying:
            return  # already done or under way: one answer is enough
        # Not a waiting effect: while the authoritative server is asked, this stream goes on (it may
        # have to answer that server's own <db:verify/>, or we would wait for each other).
        self.verifying.add((remote, local))
        self._push(VerifyDialback(remote, local, self.stream_id, (element.text or "").strip()))

    def dialback_result(self, remote: str, local: str, valid: bool | str) -> None:
        """Feedback to VerifyDialback: the authoritative server's answer (or the certificate's), or the
        condition of a dialback error when there is no answer (XEP-0220 §2.4: remote-connection-failed,
        remote-server-timeout, policy-violation ...)."""
        if self.phase is Phase.CLOSED or (remote, local) not in self.verifying:
            return
        self.verifying.discard((remote, local))
        if isinstance(valid, str):
            self._push(fx.Write(db.error("result", from_=local, to=remote, condition=valid)))
            return
        if not valid and self.pairs:
            # A forged key on a stream that carries other domain pairs: refuse this one with <forbidden/>
            # rather than 'invalid', which would end the stream for all of them (XEP-0220 §2.1.2).
            self._push(fx.Write(db.error("result", from_=local, to=remote, condition="forbidden")))
            return
        self._push(fx.Write(db.element("result", from_=local, to=remote, type_="valid" if valid else "invalid")))
        if not valid:
            self.close()  # the peer tried to pass for `remote`: nothing more from it (XEP-0220 §2.2.1)
            return
        self.pairs.add((remote, local))
        self.phase = Phase.READY
        self._push(Authorized(remote, local, "dialback"))

    def _verify(self, element: etree._Element) -> None:
        receiving, originating = (element.get("from") or "").lower(), (element.get("to") or "").lower()
        stream_id = element.get("id") or ""
        if self.outgoing:
            # The authoritative server's answer to our question: 'from' it, 'to' us.
            kind = element.get("type")
            error = db.error_condition(element) if kind == "error" else None
            self._push(VerifyAnswer(receiving, originating, stream_id, kind == "valid", error))
            return
        # We are the authoritative server for 'to' (originating): is this key one we generated?
        if self.phase is Phase.CONNECTED:
            raise StreamError.not_authorized("Dialback before the stream is negotiated")
        if originating not in self.hosts:
            self._push(fx.Write(db.error("verify", from_=originating, to=receiving, id_=stream_id,
                                         condition="item-not-found")))
            return
        valid = db.key_matches(self.secret, receiving, originating, stream_id, element.text or "")
        self._push(fx.Write(db.element("verify", from_=originating, to=receiving, id_=stream_id,
                                       type_="valid" if valid else "invalid")))

    # outgoing negotiation

    def _outgoing_negotiation(self, element: etree._Element) -> None:
        tag = element.tag
        if tag == FEATURES and self.phase is Phase.NEGOTIATING:
            self._features_seen = True
            self._choose(element)
        elif tag == PROCEED and self.phase is Phase.TLS:
            self._inbox.clear()
            self._wait(fx.START_TLS)
        elif tag == TLS_FAILURE:
            raise StreamError.undefined_condition("The peer could not start TLS")
        elif tag == SUCCESS and self.phase is Phase.SASL:
            self.authenticated_external = True  # announced once the restarted stream's features came
            self.phase = Phase.NEGOTIATING
            self._push(fx.RESTART)
            self._send_header()
        elif tag == FAILURE and self.phase is Phase.SASL:
            self.phase = Phase.NEGOTIATING
            if self._dialback_offered:
                self._start_dialback()
            else:
                self._push(Refused(self.local or "", "SASL EXTERNAL failed and dialback is not offered"))
                self.close()
        else:
            raise StreamError.unsupported_stanza_type(f"Unexpected element {tag}")

    _dialback_offered = False

    def _choose(self, features: etree._Element) -> None:
        tls = features.find(STARTTLS)
        if tls is not None and not self.secure and self.policy.tls_available:
            self._push(fx.Write(f"<starttls xmlns='{NS_TLS}'/>".encode()))
            self.phase = Phase.TLS
            return
        if not self.secure and self.policy.require_tls:
            self._push(TlsNeeded(self.remote or ""))
            self.stream_error(StreamError.policy_violation("TLS is required"))
            return
        mechanisms = [m.text for m in features.iterfind(f"{MECHANISMS}/{{{NS_SASL}}}mechanism")]
        self._dialback_offered = features.find(f"{{{NS_DIALBACK_FEATURE}}}dialback") is not None
        self._sm_offered = features.find(SM_FEATURE) is not None
        if not self.bidi and self.policy.bidi and features.find(BIDI_FEATURE) is not None:
            self.bidi = True  # before authenticating (XEP-0288 §2.2)
            self._push(fx.Write(f"<bidi xmlns='{NS_BIDI}'/>".encode()))
        if self.authenticated_external:
            self.pairs.add((self.remote or "", self.local or ""))
            self._start_sm()
            self._push(Authorized(self.remote or "", self.local or "", "external"))
            self._negotiated()
            return
        if self.secure and "EXTERNAL" in mechanisms:
            self.phase = Phase.SASL
            # Held <db:verify/>s wait for the outcome: after <success/> both sides restart the stream, and
            # anything sent in between would reach the peer's discarded parser (RFC 6120 §6.4.6).
            self._push(fx.Write(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>=</auth>".encode()))
            return
        if self.policy.dialback:
            # Peers that predate the feature still speak dialback when the header declared it.
            self._start_dialback()
            return
        self._push(Refused(self.local or "", "no usable authentication (the certificate did not validate)"))
        self.close()

    def _start_dialback(self) -> None:
        self.phase = Phase.READY
        self._flush_verifies()  # questions for the peer first: its answers unblock its own streams sooner
        self._authorize(self.local or "")
        self._negotiated()

    def _negotiated(self) -> None:
        self.phase = Phase.READY
        self._flush_verifies()
        for local in self._piggyback:
            self._authorize(local)
        self._piggyback.clear()

    def _flush_verifies(self) -> None:
        for data in self._verifies:
            self._push(fx.Write(data))
        self._verifies.clear()

    def _authorize(self, local: str) -> None:
        pair = (self.remote or "", local)
        if pair in self.pairs or pair in self.pending_results:
            return
        if self.authenticated_external and local == self.local:
            return
        self.pending_results.add(pair)
        key = db.key(self.secret, self.remote or "", local, self.stream_id or "")
        self._push(fx.Write(db.element("result", from_=local, to=self.remote or "", text=key)))

    def authorize(self, local: str) -> bool:
        """Outgoing: authenticate another of our hosts on this stream (dialback piggybacking); whether
        that wrote something (the driver then carries out the effects)."""
        pair = (self.remote or "", local)
        if pair in self.pairs or pair in self.pending_results or local in self._piggyback:
            return False
        if self.phase is Phase.READY:
            self._authorize(local)
            return bool(self._out)
        self._piggyback.append(local)
        return False

    def verify(self, *, local: str, remote: str, stream_id: str, key: str) -> None:
        """Outgoing: ask the authoritative server whether `key` (offered by `remote` to our host `local`
        on stream `stream_id`) is one it generated; the answer comes back as `VerifyAnswer`."""
        data = db.element("verify", from_=local, to=remote, id_=stream_id, text=key)
        if self.phase is Phase.READY and self._features_seen:
            self._push(fx.Write(data))
        else:
            self._verifies.append(data)

    # stream management (XEP-0198)

    def _start_sm(self) -> None:
        """Outgoing, at the first authorized pair: enable (or resume) stream management when offered."""
        if self.sm_requested or not (self._sm_offered and self.policy.stream_management):
            return
        self.sm_requested = True
        if self.resume is not None:
            # Our own count of their stanzas is 0: on an s2s stream nothing comes our way.
            self._push(fx.Write(f"<resume xmlns='{NS_SM}' previd={quoteattr(self.resume)} h='0'/>".encode()))
        else:
            self._push(fx.Write(f"<enable xmlns='{NS_SM}' resume='true'/>".encode()))

    def _stream_management(self, element: etree._Element) -> None:
        tag = element.tag
        if self.outgoing:
            if not self.sm_requested:
                raise StreamError.unsupported_stanza_type("Stream management was not asked for")
            if tag == SM_ENABLED:
                self._push(SmStarted(element.get("id") if element.get("resume") in ("true", "1") else None, None))
            elif tag == SM_RESUMED and self.resume is not None:
                previd, self.resume = self.resume, None
                self._push(SmStarted(previd, sm.parse_h(element.get("h"))))
            elif tag == SM_FAILED:
                resuming, self.resume = self.resume is not None, None
                if resuming:
                    self._push(fx.Write(f"<enable xmlns='{NS_SM}' resume='true'/>".encode()))
                else:
                    self.sm_requested = False
                self._push(SmFailed(resuming))
            elif tag == sm.ACK:
                self._push(Acked(sm.parse_h(element.get("h"))))
            elif tag == sm.REQUEST:
                self._push(fx.Write(sm.ack(0)))
            return
        if tag == sm.REQUEST and self.sm_handled is not None:
            self._push(fx.Write(sm.ack(self.sm_handled)))
        elif tag in (sm.ENABLE, sm.RESUME) and not self.pairs:
            self._push(fx.Write(sm.failed("unexpected-request")))
        elif tag in (sm.ENABLE, sm.RESUME) and (self.sm_handled is not None or not self.policy.stream_management):
            self._push(fx.Write(sm.failed("unexpected-request" if self.sm_handled is not None
                                          else "feature-not-implemented")))
        elif tag == sm.ENABLE:
            self.sm_id, self.sm_handled = self.new_id(), 0
            self._push(fx.Write(sm.enabled(self.sm_id, max_seconds=None)))
        elif tag == sm.RESUME:
            remote = next(iter(self.pairs))[0]
            self._wait(ResumeCheck(element.get("previd") or "", remote))
        elif tag != sm.ACK:  # an <a/> we never asked for is harmless
            raise StreamError.unsupported_stanza_type(f"Unexpected element {tag}")

    def resume_result(self, handled: int | None) -> None:
        """Feedback to ResumeCheck: resume the earlier stream's count, or refuse."""
        effect = self.waiting
        if not self._feedback(ResumeCheck):
            return
        assert isinstance(effect, ResumeCheck)
        if handled is None:
            self._push(fx.Write(sm.failed("item-not-found")))
            return
        self.sm_id, self.sm_handled = effect.previd, handled
        self._push(fx.Write(sm.resumed(effect.previd, handled)))

    def may_send(self, local: str, remote: str) -> bool:
        """Whether a stanza from our domain `local` to `remote` may be written on this stream: an
        outgoing one authorized for the pair, or a bidirectional incoming one the peer authorized
        `remote` on towards `local` (after SASL, once the peer restarted the stream)."""
        return (remote, local) in self.pairs and (self.outgoing or self.bidi) and self._open \
            and self._restart_pending is None

    def ready_for(self, local: str) -> bool:
        return (self.remote, local) in self.pairs and self._open

    @property
    def _open(self) -> bool:
        """Stanzas may still be written: our `</stream:stream>` is not (nothing may follow it)."""
        return self.phase not in (Phase.CLOSING, Phase.CLOSED)


def _sasl_failure(condition: str) -> bytes:
    return f"<failure xmlns='{NS_SASL}'><{condition}/></failure>".encode()


def _address(element: etree._Element, name: str) -> str:
    """A stanza's 'from' or 'to' (RFC 6120 §8.1.1.2, §8.1.2.2 rule 1: present, not empty, a valid JID)."""
    value = element.get(name)
    if not value:
        raise StreamError.improper_addressing(f"A stanza between servers needs a '{name}'")
    try:
        JID.parse(value)  # memoised: the router parses the same text again for free
    except JIDError:
        raise StreamError.improper_addressing(f"The stanza's '{name}' is not a valid JID") from None
    return value


def _is_domain(text: str) -> bool:
    try:
        jid = JID.parse(text)
    except JIDError:
        return False
    return jid.local is None and jid.resource is None


def _domain(jid: str) -> str:
    """The domain part of a JID string, lower-cased (stanza addressing on s2s is checked by domain)."""
    rest = jid.partition("/")[0]
    return rest.rpartition("@")[2].lower()


def retag(element: etree._Element, old: str, new: str) -> etree._Element:
    """A copy of a stanza with its content namespace changed (jabber:client <-> jabber:server): the root
    declares the new one as default, so neither side sees a prefix for it (RFC 6120 §4.8.5)."""
    root = etree.Element(f"{{{new}}}{etree.QName(element).localname}", nsmap={None: new})
    for name, value in element.attrib.items():
        root.set(name, value)
    root.text = element.text
    prefix = f"{{{old}}}"
    for child in element:
        copy = deepcopy(child)
        copy.tail = child.tail
        for node in copy.iter():
            if isinstance(node.tag, str) and node.tag.startswith(prefix):
                node.tag = f"{{{new}}}{node.tag[len(prefix):]}"
        root.append(copy)
    etree.cleanup_namespaces(root)
    return root
