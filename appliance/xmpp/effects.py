"""What a stream machine (`xmpp.machine`) asks its driver to do.

Sync effects are carried out on the spot (write, open or close the stream, stream error, closed);
async ones need the driver's storage, TLS or routing, and the machine waits for the matching
feedback call before it takes the next input (`StreamMachine.waiting` names it). The hot-path
effect is the parser's own `Stanza` event handed on unchanged ("route this stanza"): a message in a
bound stream allocates nothing here.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from lxml import etree

from appliance.xmpp.errors import StreamError
from appliance.xmpp.jid import JID
from appliance.xmpp.parser import Stanza
from appliance.xmpp.sasl import SaslFailure

# -- sync: carry out and go on --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Write:
    """Write these bytes (a complete non-stanza element: features, SASL, SM, TLS)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Send:
    """Send this stanza to the client through the output path (stream management, client state)."""

    element: etree._Element


@dataclass(frozen=True, slots=True)
class OpenStream:
    """Write our stream header, or the framing's equivalent (WebSocket `<open/>`, BOSH attributes)."""

    host: str
    stream_id: str
    to: str | None
    version: str | None


@dataclass(frozen=True, slots=True)
class SendStreamError:
    """Write `<stream:error/>` in the framing of the transport (a `Closed` follows)."""

    error: StreamError


@dataclass(frozen=True, slots=True)
class Closed:
    """The stream is over: release what it held; `disconnect`: close the connection too."""

    was_ready: bool
    disconnect: bool


@dataclass(frozen=True, slots=True)
class ClientState:
    """XEP-0352: the client went active or inactive."""

    active: bool


@dataclass(frozen=True, slots=True)
class IqResponse:
    """A result or error to one of our own requests (pings, roster pushes): hand it to their tracker."""

    element: etree._Element


class _Marker:
    """An effect without data; one instance each."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


CLOSE_STREAM = _Marker("CLOSE_STREAM")  # write our stream close (`</stream:stream>`, `<close/>`)
RESTART = _Marker("RESTART")  # the client restarts the stream: the framing expects a new header
BOUND = _Marker("BOUND")  # a resource is bound: announce the session (after the reply went out)
SM_ENABLED = _Marker("SM_ENABLED")  # stream management is on (`machine.sm`): register it if resumable

# -- async: the machine waits for the feedback named -------------------------------------------------

FEATURES = _Marker("FEATURES")  # feedback: `features(offer)`, the offer for the stream's state
START_TLS = _Marker("START_TLS")  # reset the parser and do the TLS handshake (no feedback)


def sasl_payload(text: str | None) -> bytes:
    """Base64 SASL data as RFC 6120 §6.4.2 writes it ("=" or nothing: empty)."""
    if text is None or text.strip() == "":
        return b""
    text = text.strip()
    if text == "=":
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SaslFailure("incorrect-encoding") from None


@dataclass(frozen=True, slots=True)
class Authenticate:
    """Start a SASL exchange (feedback: `sasl_challenge`, `sasl_success` or `sasl_failure`).

    `request` is the SASL2 `<authenticate/>` (None for RFC 6120 SASL); `offered` the mechanism list
    the client saw (channel-binding downgrade protection signs it).
    """

    mechanism: str
    text: str | None
    request: etree._Element | None
    offered: tuple[str, ...]

    def payload(self) -> bytes:
        """The initial response, base64-decoded (raises SaslFailure('incorrect-encoding'))."""
        return sasl_payload(self.text)


@dataclass(frozen=True, slots=True)
class SaslResponse:
    """The client's answer to our challenge (same feedback as `Authenticate`)."""

    text: str | None

    def payload(self) -> bytes:
        return sasl_payload(self.text)


@dataclass(frozen=True, slots=True)
class Sasl2Success:
    """SASL2 succeeded: compose `<success/>` with inline resumption, Bind 2 and FAST (feedback: `sasl2_done`)."""

    jid: JID
    additional: bytes
    request: etree._Element


@dataclass(frozen=True, slots=True)
class PreauthIq:
    """An IQ before authentication: only pre-auth handlers (registration) answer it (no feedback)."""

    element: etree._Element


@dataclass(frozen=True, slots=True)
class Bind:
    """Take `jid` for this stream (feedback: `bound` or `bind_failed`): conflicts are the driver's to see."""

    iq: etree._Element
    jid: JID


@dataclass(frozen=True, slots=True)
class Handshake:
    """XEP-0114: check a component's digest (feedback: `handshake_accepted` or `handshake_refused`)."""

    digest: str


@dataclass(frozen=True, slots=True)
class Resume:
    """XEP-0198 `<resume/>`: find the named session (feedback: `resume_failed`, or adoption)."""

    element: etree._Element


Effect = (
    Write | Send | OpenStream | SendStreamError | Closed | ClientState | IqResponse | _Marker | Authenticate
    | SaslResponse | Sasl2Success | PreauthIq | Bind | Handshake | Resume | Stanza
)

__all__ = [
    "BOUND", "CLOSE_STREAM", "FEATURES", "RESTART", "SM_ENABLED", "START_TLS", "Authenticate", "Bind",
    "ClientState", "Closed", "Effect", "Handshake", "IqResponse", "OpenStream", "PreauthIq", "Resume", "Sasl2Success",
    "SaslResponse", "Send", "SendStreamError", "Stanza", "Write",
]
