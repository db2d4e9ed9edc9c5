"""Client State Indication (XEP-0352): what an inactive client does not need to hear about at once.

While a client is inactive its session passes every outgoing stanza through `CsiQueue.hold`:
presence updates (only the newest per sender is kept) and chat states without a body wait; anything
else is urgent, and the session first sends what was held, in order, then the urgent stanza.
Going active again sends everything held. The queue exists only while the client is inactive.
"""

from __future__ import annotations

import itertools

from lxml import etree

from appliance.xmpp.ns import NS_CHATSTATES, NS_CLIENT, NS_DELAY, NS_HINTS, NS_STANZA_ID

PRESENCE = f"{{{NS_CLIENT}}}presence"
MESSAGE = f"{{{NS_CLIENT}}}message"
BODY = f"{{{NS_CLIENT}}}body"
_MAY_WAIT_WITH = frozenset({NS_CHATSTATES, NS_DELAY, NS_HINTS, NS_STANZA_ID})
_THREAD = f"{{{NS_CLIENT}}}thread"


def wait_key(data: bytes, element: etree._Element | None) -> str | None:
    """How a stanza may wait: "p <sender>" for presence updates (newest wins), "c" for chat states;
    None when it is urgent."""
    if not (data.startswith(b"<presence") or data.startswith(b"<message")):
        return None  # IQs and anything unexpected: urgent, and no parsing needed
    if element is None:
        try:
            element = etree.fromstring(data)
        except etree.XMLSyntaxError:
            return None
    if element.tag == PRESENCE:
        if element.get("type") in (None, "unavailable"):
            return f"p {element.get('from', '')}"
        return None  # subscription requests and errors are for the user now
    if element.tag == MESSAGE and element.find(BODY) is None:
        spaces = {etree.QName(c).namespace for c in element if isinstance(c.tag, str) and c.tag != _THREAD}
        if NS_CHATSTATES in spaces and spaces <= _MAY_WAIT_WITH:
            return "c"
    return None


class CsiQueue:
    """Held-back stanzas of one inactive session, in the order they would have been sent."""

    __slots__ = ("_counter", "_held", "max_held")

    def __init__(self, max_held: int) -> None:
        self.max_held = max_held
        self._held: dict[object, bytes] = {}
        self._counter = itertools.count()

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, data: bytes, element: etree._Element | None) -> bool:
        """Keep a non-urgent stanza and return True; return False for one that must go out now."""
        key = wait_key(data, element)
        if key is None or len(self._held) >= self.max_held:
            return False
        if key == "c":
            self._held[next(self._counter)] = data
        else:
            self._held.pop(key, None)  # an older presence of this sender is superseded
            self._held[key] = data
        return True

    def release(self) -> list[bytes]:
        """Everything held, oldest first; the queue is empty afterwards."""
        held = list(self._held.values())
        self._held.clear()
        return held
