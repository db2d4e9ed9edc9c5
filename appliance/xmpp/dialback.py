"""Server Dialback keys (XEP-0220) generated as XEP-0185 recommends, and the dialback elements."""

from __future__ import annotations

import hashlib
import hmac
from xml.sax.saxutils import quoteattr

from appliance.xmpp.ns import NS_DIALBACK

RESULT = f"{{{NS_DIALBACK}}}result"
VERIFY = f"{{{NS_DIALBACK}}}verify"


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
