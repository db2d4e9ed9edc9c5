"""Small stanza builders shared by the core and modules."""

from __future__ import annotations

from lxml import etree

from appliance.xmpp.ns import NS_CLIENT

IQ = f"{{{NS_CLIENT}}}iq"


def iq_result(
    request: etree._Element, payload: etree._Element | None = None, *, from_: str | None = None
) -> etree._Element:
    """The result IQ answering `request`: same id, addresses swapped (or `from_` as the sender)."""
    reply = etree.Element(IQ, nsmap={None: NS_CLIENT})
    reply.set("type", "result")
    reply.set("id", request.get("id", ""))
    sender = from_ if from_ is not None else request.get("to")
    if sender is not None:
        reply.set("from", sender)
    if request.get("from") is not None:
        reply.set("to", request.get("from", ""))
    if payload is not None:
        reply.append(payload)
    return reply
