"""Fan-out: serialize a stanza once, then write it to many local sessions with only the 'to' spliced in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from xml.sax.saxutils import quoteattr

from lxml import etree

from appliance.core.api import Session
from appliance.xmpp.jid import JID


def to_attr(jid: JID) -> bytes:
    """The ` to="..."` attribute bytes for `jid`, computed once per occupant session."""
    return b" to=" + quoteattr(str(jid)).encode()


class Template:
    """A stanza serialized without 'to': `bytes_for(attr)` is the stanza addressed to one recipient."""

    __slots__ = ("_head", "_tail", "element")

    def __init__(self, element: etree._Element) -> None:
        element.attrib.pop("to", None)
        self.element = element
        data = etree.tostring(element)
        cut = 1 + len(etree.QName(element).localname)  # after "<message"
        self._head, self._tail = data[:cut], data[cut:]

    def bytes_for(self, attr: bytes) -> bytes:
        return b"".join((self._head, attr, self._tail))


class Fanout:
    """Delivers templates to occupants' sessions: straight to local sessions, through routing otherwise."""

    __slots__ = ("_lookup", "_route")

    def __init__(
        self, lookup: Callable[[JID], Session | None], route: Callable[[etree._Element], Awaitable[None]]
    ) -> None:
        self._lookup = lookup
        self._route = route

    async def send(self, template: Template, recipients: Iterable[tuple[JID, bytes]]) -> None:
        """Send to each (full JID, its to-attribute)."""
        remote: list[JID] = []
        for jid, attr in recipients:
            session = self._lookup(jid)
            if session is not None:
                session.send_bytes(template.bytes_for(attr))
            else:
                remote.append(jid)
        for jid in remote:
            out = etree.fromstring(template.bytes_for(to_attr(jid)))
            await self._route(out)

    async def send_one(self, element: etree._Element, jid: JID) -> None:
        element.set("to", str(jid))
        session = self._lookup(jid)
        if session is not None:
            session.send(element)
        else:
            await self._route(element)
