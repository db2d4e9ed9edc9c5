"""Stream Management (XEP-0198) bookkeeping, sans-IO: counters, the unacknowledged queue, the elements.

One `StreamManagement` per session that sent `<enable/>`; the queue is created on the first outbound
stanza, so a session that never receives anything costs a handful of integers. Counters are plain
Python integers; only the wire values are taken modulo 2^32 (XEP-0198 §4).
"""

from __future__ import annotations

from collections import deque
from xml.sax.saxutils import quoteattr

from lxml import etree

from appliance.xmpp.errors import StreamError
from appliance.xmpp.ns import NS_CARBONS, NS_CHATSTATES, NS_CLIENT, NS_MAM, NS_SM, NS_STANZAS

ENABLE = f"{{{NS_SM}}}enable"
RESUME = f"{{{NS_SM}}}resume"
REQUEST = f"{{{NS_SM}}}r"
ACK = f"{{{NS_SM}}}a"
ELEMENTS = frozenset({ENABLE, RESUME, REQUEST, ACK})
MODULUS = 2**32

_MESSAGE = f"{{{NS_CLIENT}}}message"


class StreamManagement:
    """Counters and the queue of one managed stream (XEP-0198 §4)."""

    __slots__ = (
        "acked", "handled", "id", "max_queue", "queue", "queued_bytes", "requested_at", "resumable", "sent"
    )

    def __init__(self, sm_id: str, *, resumable: bool, max_queue: int) -> None:
        self.id = sm_id
        self.resumable = resumable
        self.max_queue = max_queue
        self.handled = 0  # stanzas received from the client and fully processed
        self.sent = 0  # stanzas sent to the client
        self.acked = 0  # of those, how many the client acknowledged
        self.queue: deque[bytes] | None = None  # the unacknowledged ones, oldest first
        self.queued_bytes = 0  # their size
        self.requested_at = 0.0  # when our last <r/> went out (0: none outstanding)

    @property
    def unacked(self) -> int:
        return self.sent - self.acked

    def outbound(self, data: bytes) -> None:
        """Count and keep one stanza on its way to the client. Past `max_queue` unacknowledged the caller
        closes the stream (and the stanzas go elsewhere): refusing here would fail whoever is sending."""
        queue = self.queue
        if queue is None:
            queue = self.queue = deque()
        queue.append(data)
        self.queued_bytes += len(data)
        self.sent += 1

    def acknowledge(self, h_attr: str | None) -> None:
        """Drop the stanzas the client's `h` covers; an `h` beyond what we sent is a stream error."""
        h = parse_h(h_attr)
        done = (h - self.acked) % MODULUS
        if done > self.unacked:
            raise StreamError.undefined_condition(
                f"Acknowledged {h} stanzas but only {self.sent % MODULUS} were sent (handled-count-too-high)"
            )
        queue = self.queue
        for _ in range(done):
            self.queued_bytes -= len(queue.popleft())  # type: ignore[union-attr]  # done > 0 implies a queue
        self.acked += done
        self.requested_at = 0.0
        if queue is not None and not queue:
            self.queue = None

    def take_unacked(self) -> list[bytes]:
        """Everything not yet acknowledged, oldest first; the queue is emptied."""
        queue, self.queue = self.queue, None
        self.acked = self.sent
        self.queued_bytes = 0
        return list(queue) if queue else []

    def unacked_stanzas(self) -> list[bytes]:
        return list(self.queue) if self.queue else []


def parse_h(value: str | None) -> int:
    if value is None or not value.isdigit() or int(value) >= MODULUS:
        raise StreamError.bad_format("'h' must be an integer from 0 to 2^32-1")
    return int(value)


def wire(count: int) -> str:
    return str(count % MODULUS)


def enabled(sm_id: str | None, *, max_seconds: int | None) -> bytes:
    attrs = ""
    if sm_id is not None:
        attrs = f" id={quoteattr(sm_id)} resume='true'"
        if max_seconds is not None:
            attrs += f" max='{max_seconds}'"
    return f"<enabled xmlns='{NS_SM}'{attrs}/>".encode()


def resumed(previd: str, handled: int) -> bytes:
    return f"<resumed xmlns='{NS_SM}' previd={quoteattr(previd)} h='{wire(handled)}'/>".encode()


def failed(condition: str, handled: int | None = None) -> bytes:
    """`<failed/>` with a stanza error condition, and the `h` we still know (XEP-0198 1.6)."""
    h = f" h='{wire(handled)}'" if handled is not None else ""
    return f"<failed xmlns='{NS_SM}'{h}><{condition} xmlns='{NS_STANZAS}'/></failed>".encode()


def ack(handled: int) -> bytes:
    return f"<a xmlns='{NS_SM}' h='{wire(handled)}'/>".encode()


REQUEST_BYTES = f"<r xmlns='{NS_SM}'/>".encode()


def feature() -> etree._Element:
    return etree.Element(f"{{{NS_SM}}}sm", nsmap={None: NS_SM})


def reroutable(stanza: etree._Element) -> bool:
    """Whether an unacknowledged stanza deserves another way to its user (another resource or offline).

    Chat and normal messages with content do; copies the user can fetch again (carbons, archive
    results), bare chat states, group chat, headlines and errors do not.
    """
    if stanza.tag != _MESSAGE or stanza.get("type", "normal") not in ("normal", "chat"):
        return False
    content = False
    for child in stanza:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        ns = etree.QName(tag).namespace
        if ns in (NS_CARBONS, NS_MAM):
            return False
        if ns != NS_CHATSTATES:
            content = True
    return content
