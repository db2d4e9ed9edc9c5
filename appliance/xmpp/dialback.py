"""Server Dialback keys (XEP-0220) generated as XEP-0185 recommends, and the dialback elements (with
the dialback errors of XEP-0220 §2.4)."""

from __future__ import annotations

import hashlib
import hmac
from xml.sax.saxutils import quoteattr

from lxml import etree

from appliance.xmpp.ns import NS_DIALBACK, NS_SERVER, NS_STANZAS

RESULT = f"{{{NS_DIALBACK}}}result"
VERIFY = f"{{{NS_DIALBACK}}}verify"

# XEP-0220 §2.4: the conditions a dialback error may carry; those about reaching the authoritative server
# are worth a retry later ('wait'), the others not ('cancel').
ERROR_TYPES = {
    "item-not-found": "cancel", "remote-connection-failed": "wait", "remote-server-not-found": "cancel",
    "remote-server-timeout": "wait", "policy-violation": "cancel", "not-authorized": "cancel",
    "forbidden": "cancel", "not-acceptable": "cancel", "internal-server-error": "wait",
}


def key(secret: bytes, receiving: str, originating: str, stream_id: str) -> str:
    """XEP-0185 §3: HMAC-SHA256(SHA256(secret) as hex, "receiving originating stream-id"), as hex."""
    hashed = hashlib.sha256(secret).hexdigest().encode()
    return hmac.new(hashed, f"{receiving} {originating} {stream_id}".encode(), hashlib.sha256).hexdigest()


def key_matches(secret: bytes, receiving: str, originating: str, stream_id: str, offered: str) -> bool:
    return hmac.compare_digest(key(secret, receiving, originating, stream_id), offered.strip())


def element(name: str, *, from_: str, to: str, id_: str | None = None, type_: str | None = None,
            text: str = "") -> bytes:
    """`<db:result/>` or `<db:verify/>` (the `db` prefix is declared by both stream headers)."""
    attrs = f" from={quoteattr(from_)} to={quoteattr(to)}"
    if id_ is not None:
        attrs += f" id={quoteattr(id_)}"
    if type_ is not None:
        attrs += f" type={quoteattr(type_)}"
    return (f"<db:{name}{attrs}>{text}</db:{name}>" if text else f"<db:{name}{attrs}/>").encode()


def error(name: str, *, from_: str, to: str, condition: str, id_: str | None = None) -> bytes:
    """A dialback error (XEP-0220 §2.4): `<db:result type='error'>` or `<db:verify type='error'>` with a
    stanza error condition, which the stream survives."""
    inner = f"<error type='{ERROR_TYPES[condition]}'><{condition} xmlns='{NS_STANZAS}'/></error>"
    return element(name, from_=from_, to=to, id_=id_, type_="error", text=inner)


def error_condition(answer: etree._Element) -> str:
    """The condition of a received dialback error ('undefined-condition' when it names none)."""
    for child in answer.iterfind(f"{{{NS_SERVER}}}error/*"):
        if isinstance(child.tag, str) and child.tag.startswith(f"{{{NS_STANZAS}}}"):
            return etree.QName(child).localname
    return "undefined-condition"
