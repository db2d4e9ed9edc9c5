"""The external component protocol (XEP-0114), sans IO: the stream profile, the handshake digest and
the move of stanzas between the component namespace and the client namespace the router speaks.

A component opens `<stream:stream xmlns='jabber:component:accept' to='irc.example.org'>` (no version,
no features), we answer with our header and a stream id, it sends `<handshake>` with the lower-case
hex SHA-1 of stream id + shared secret, and we answer an empty `<handshake/>` (or `not-authorized`).
From then on it sends and receives stanzas for its whole domain.
"""

from __future__ import annotations

import hashlib
import hmac

from lxml import etree

from appliance.xmpp import stream as xs
from appliance.xmpp.ns import NS_CLIENT, NS_COMPONENT

HANDSHAKE = f"{{{NS_COMPONENT}}}handshake"
MESSAGE = f"{{{NS_COMPONENT}}}message"
PRESENCE = f"{{{NS_COMPONENT}}}presence"
IQ = f"{{{NS_COMPONENT}}}iq"
STANZAS = frozenset({MESSAGE, PRESENCE, IQ})
HANDSHAKE_OK = f"<handshake xmlns='{NS_COMPONENT}'/>".encode()  # written inside the component stream

# Before the handshake only <handshake/> is taken; stanzas then are not-authorized (xs.expect).
ACCEPTS: dict[xs.C2SState, frozenset[str]] = {xs.C2SState.UNAUTHENTICATED: frozenset({HANDSHAKE})}


def handshake_digest(stream_id: str, secret: str) -> str:
    """XEP-0114 §3: lower-case hex SHA-1 of the stream id followed by the secret."""
    return hashlib.sha1((stream_id + secret).encode("utf-8")).hexdigest()  # the XEP says SHA-1


def handshake_matches(received: str | None, stream_id: str, secret: str) -> bool:
    """Compare the component's digest with ours in constant time (case-insensitive hex)."""
    theirs = (received or "").strip().lower()
    return hmac.compare_digest(theirs.encode(), handshake_digest(stream_id, secret).encode())


def renamespace(element: etree._Element, old: str, new: str) -> etree._Element:
    """A copy of `element` with the stanza namespace `old` replaced by `new` on the stanza and on the
    children in that namespace (body, subject, error...); payloads of other namespaces are copied as
    they are, so a `<forwarded/>` keeps its jabber:client message."""
    out = etree.Element(_swap(element.tag, old, new), attrib=dict(element.attrib), nsmap={None: new})
    out.text = element.text
    _copy_children(element, out, old, new)
    return out


def _copy_children(source: etree._Element, target: etree._Element, old: str, new: str) -> None:
    for child in source:
        if not isinstance(child.tag, str):
            continue
        if child.tag.startswith("{" + old + "}"):
            copy = etree.SubElement(target, _swap(child.tag, old, new), attrib=dict(child.attrib))
            copy.text = child.text
            _copy_children(child, copy, old, new)
        else:
            copy = etree.fromstring(etree.tostring(child, with_tail=False))
            target.append(copy)
        copy.tail = child.tail


def _swap(tag: str, old: str, new: str) -> str:
    prefix = "{" + old + "}"
    return "{" + new + "}" + tag[len(prefix):] if tag.startswith(prefix) else tag


def to_client(element: etree._Element) -> etree._Element:
    """A stanza from a component, in the namespace the router and clients use."""
    return renamespace(element, NS_COMPONENT, NS_CLIENT)


def to_component(element: etree._Element) -> bytes:
    """A routed stanza serialized for the component stream."""
    return etree.tostring(renamespace(element, NS_CLIENT, NS_COMPONENT))


__all__ = [
    "ACCEPTS", "HANDSHAKE", "HANDSHAKE_OK", "STANZAS", "handshake_digest", "handshake_matches", "renamespace",
    "to_client", "to_component",
]
