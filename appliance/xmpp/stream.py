"""The c2s stream's state table and the pieces of XML every transport sends (header, features, close).

The table lives here, in one place: which top-level elements a client may send in which state. The
stream machine (`xmpp.machine`) holds every stream to it, so an out-of-order element always gets the
same stream error whatever the transport.
"""

from __future__ import annotations

import enum
import functools
from xml.sax.saxutils import quoteattr

from lxml import etree

from appliance.xmpp import sm
from appliance.xmpp.errors import StreamError
from appliance.xmpp.ns import (
    NS_BIND,
    NS_BIND2,
    NS_CLIENT,
    NS_CSI,
    NS_FAST,
    NS_SASL,
    NS_SASL2,
    NS_SASL_CB,
    NS_SESSION,
    NS_STREAM,
    NS_TLS,
)

STARTTLS = f"{{{NS_TLS}}}starttls"
AUTH = f"{{{NS_SASL}}}auth"
RESPONSE = f"{{{NS_SASL}}}response"
ABORT = f"{{{NS_SASL}}}abort"
MESSAGE = f"{{{NS_CLIENT}}}message"
PRESENCE = f"{{{NS_CLIENT}}}presence"
IQ = f"{{{NS_CLIENT}}}iq"
STANZAS = frozenset({MESSAGE, PRESENCE, IQ})
AUTHENTICATE = f"{{{NS_SASL2}}}authenticate"  # XEP-0388
SASL2_RESPONSE = f"{{{NS_SASL2}}}response"
SASL2_ABORT = f"{{{NS_SASL2}}}abort"
CSI_ACTIVE = f"{{{NS_CSI}}}active"  # XEP-0352
CSI_INACTIVE = f"{{{NS_CSI}}}inactive"
# Non-stanza elements a bound stream may carry (stream management, client state).
READY_EXTENSIONS = frozenset({*sm.ELEMENTS, CSI_ACTIVE, CSI_INACTIVE})


class C2SState(enum.Enum):
    """Where a client stream is in its life."""

    CONNECTED = "connected"  # waiting for the stream header
    UNAUTHENTICATED = "unauthenticated"  # features sent: STARTTLS, SASL (and pre-auth IQs) allowed
    AUTHENTICATING = "authenticating"  # a SASL exchange is running
    AUTHENTICATED = "authenticated"  # SASL done, stream restarted: waiting for resource binding
    READY = "ready"  # resource bound: stanzas flow
    CLOSED = "closed"


# State -> the top-level elements it accepts (None: any element in the stanza set plus extensions).
ACCEPTS: dict[C2SState, frozenset[str]] = {
    # <abort/> outside an exchange is answered <failure><aborted/></failure> (RFC 6120 §6.4.4).
    C2SState.UNAUTHENTICATED: frozenset({STARTTLS, AUTH, AUTHENTICATE, IQ, ABORT}),
    C2SState.AUTHENTICATING: frozenset({RESPONSE, ABORT, SASL2_RESPONSE, SASL2_ABORT}),
    # Resumption comes instead of binding; <enable/> before binding gets <failed/> (XEP-0198 §3).
    C2SState.AUTHENTICATED: frozenset({IQ, sm.RESUME, sm.ENABLE}),
}


def expect(
    state: C2SState,
    tag: str,
    extensions: frozenset[str] = READY_EXTENSIONS,
    *,
    accepts: dict[C2SState, frozenset[str]] = ACCEPTS,
    stanzas: frozenset[str] = STANZAS,
) -> None:
    """Raise the stream error RFC 6120 asks for when `tag` is not acceptable in `state` (the c2s table
    unless another stream profile passes its own)."""
    if state is C2SState.READY:
        if tag in stanzas or tag in extensions:
            return
        raise StreamError.unsupported_stanza_type(f"Unexpected element {tag}")
    if tag in accepts.get(state, ()):
        return
    if tag in stanzas or tag in extensions:
        raise StreamError.not_authorized("Authenticate and bind a resource first")
    raise StreamError.unsupported_stanza_type(f"Unexpected element {tag}")


def stream_header(
    *, from_: str, stream_id: str, to: str | None = None, lang: str = "en", version: str | None = "1.0",
    namespace: str = NS_CLIENT,
) -> bytes:
    """Our response stream header (RFC 6120 §4.7): 'to' echoes the client's 'from' (§4.7.2); 'version' is
    the lower of the client's and ours, none when the client sent none (§4.7.5); `namespace` is the
    stream's content namespace (jabber:component:accept for components)."""
    start, end = _header_parts(from_, lang, version, namespace)
    to_attr = f" to={quoteattr(to)}".encode() if to else b""
    return start + to_attr + b" id=" + quoteattr(stream_id).encode() + end


@functools.lru_cache(maxsize=256)
def _header_parts(from_: str, lang: str, version: str | None, namespace: str) -> tuple[bytes, bytes]:
    """The stream header around its 'to' and 'id' attributes (the same for every stream of a host)."""
    version_attr = f" version='{version}'" if version else ""  # digits and a dot only
    return (
        "<?xml version='1.0'?>"
        f"<stream:stream xmlns='{namespace}' xmlns:stream='{NS_STREAM}' from={quoteattr(from_)}"
    ).encode(), f"{version_attr} xml:lang={quoteattr(lang)}>".encode()


STREAM_CLOSE = b"</stream:stream>"


def features_element(children: list[etree._Element]) -> bytes:
    """`<stream:features>` with the given feature elements (serialized with the stream prefix)."""
    body = b"".join(etree.tostring(c) for c in children)
    return b"<stream:features>" + body + b"</stream:features>"


def starttls_feature(required: bool) -> etree._Element:
    el = etree.Element(STARTTLS, nsmap={None: NS_TLS})
    if required:
        etree.SubElement(el, f"{{{NS_TLS}}}required")
    return el


def mechanisms_feature(names: list[str]) -> etree._Element:
    el = etree.Element(f"{{{NS_SASL}}}mechanisms", nsmap={None: NS_SASL})
    for name in names:
        etree.SubElement(el, f"{{{NS_SASL}}}mechanism").text = name
    return el


def bind_feature() -> etree._Element:
    return etree.Element(f"{{{NS_BIND}}}bind", nsmap={None: NS_BIND})


def session_feature() -> etree._Element:
    el = etree.Element(f"{{{NS_SESSION}}}session", nsmap={None: NS_SESSION})
    etree.SubElement(el, f"{{{NS_SESSION}}}optional")
    return el


def channel_binding_feature(types: list[str]) -> etree._Element:
    """XEP-0440: the channel-binding types this connection can do."""
    el = etree.Element(f"{{{NS_SASL_CB}}}sasl-channel-binding", nsmap={None: NS_SASL_CB})
    for name in types:
        etree.SubElement(el, f"{{{NS_SASL_CB}}}channel-binding").set("type", name)
    return el


def csi_feature() -> etree._Element:
    return etree.Element(f"{{{NS_CSI}}}csi", nsmap={None: NS_CSI})


def sasl2_feature(
    mechanisms: list[str], *, resume: bool, bind_features: list[str] | None, fast: list[str]
) -> etree._Element:
    """XEP-0388 `<authentication/>` with what can be negotiated inline: SM resumption, Bind2, FAST."""
    el = etree.Element(f"{{{NS_SASL2}}}authentication", nsmap={None: NS_SASL2})
    for name in mechanisms:
        etree.SubElement(el, f"{{{NS_SASL2}}}mechanism").text = name
    inline = etree.SubElement(el, f"{{{NS_SASL2}}}inline")
    if resume:
        inline.append(sm.feature())
    if bind_features is not None:
        bind = etree.SubElement(inline, f"{{{NS_BIND2}}}bind", nsmap={None: NS_BIND2})
        if bind_features:
            listed = etree.SubElement(bind, f"{{{NS_BIND2}}}inline")
            for var in bind_features:
                etree.SubElement(listed, f"{{{NS_BIND2}}}feature").set("var", var)
    if fast:
        fast_el = etree.SubElement(inline, f"{{{NS_FAST}}}fast", nsmap={None: NS_FAST})
        for name in fast:
            etree.SubElement(fast_el, f"{{{NS_FAST}}}mechanism").text = name
    return el


def sasl2_element(name: str, payload: bytes | None = None) -> etree._Element:
    """XEP-0388 `<challenge/>` or `<additional-data/>`-style element with base64 content."""
    import base64

    el = etree.Element(f"{{{NS_SASL2}}}{name}", nsmap={None: NS_SASL2})
    if payload:
        el.text = base64.b64encode(payload).decode()
    return el


def sasl2_failure(condition: str, text: str = "") -> bytes:
    el = etree.Element(f"{{{NS_SASL2}}}failure", nsmap={None: NS_SASL2})
    etree.SubElement(el, f"{{{NS_SASL}}}{condition}", nsmap={None: NS_SASL})
    if text:
        etree.SubElement(el, f"{{{NS_SASL2}}}text").text = text
    return etree.tostring(el)


def sasl_element(name: str, payload: bytes | None = None, condition: str | None = None, text: str = "") -> bytes:
    """`<success/>`, `<challenge/>` or `<failure/>` of the SASL namespace as bytes."""
    import base64

    el = etree.Element(f"{{{NS_SASL}}}{name}", nsmap={None: NS_SASL})
    if payload is not None:
        el.text = base64.b64encode(payload).decode() if payload else "="
    if condition:
        etree.SubElement(el, f"{{{NS_SASL}}}{condition}")
    if text:
        t = etree.SubElement(el, f"{{{NS_SASL}}}text")
        t.text = text
    return etree.tostring(el)
