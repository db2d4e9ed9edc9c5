"""Helpers shared by several feature modules: payload elements, access checks, stored XML."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping

from lxml import etree

from appliance.core.api import IqRequest, ModuleContext
from appliance.core.events import StanzaEvent
from appliance.storage.api import RosterStore
from appliance.util.timestamps import parse_datetime
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.jid import JID
from appliance.xmpp.ns import NS_CLIENT, NS_DATA
from appliance.xmpp.stanza import iq_result

__all__ = [
    "PRESENCE_SHARING",
    "disco_form",
    "element",
    "encode_limited",
    "parse_stamp",
    "parse_stored",
    "require_owner",
    "sees_presence",
    "serve_service_iq",
]

# Subscription states on the target's roster under which the contact receives the target's presence.
PRESENCE_SHARING = frozenset({"from", "both"})

# Stored documents were serialized by lxml from parsed stanzas, so they never carry a DTD; the parser
# still refuses entities and network access in case a store is edited by hand.
_STORED_XML = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def element(namespace: str, local: str = "query") -> etree._Element:
    """A new payload element `{namespace}local` declaring `namespace` as its default namespace."""
    return etree.Element(f"{{{namespace}}}{local}", nsmap={None: namespace})


def disco_form(form_type: str, fields: Iterable[tuple[str, tuple[str, ...]]]) -> etree._Element | None:
    """A XEP-0128 result form: hidden FORM_TYPE, then one list-multi field per (var, values) that has
    values; None when none has any."""
    filled = [(var, values) for var, values in fields if values]
    if not filled:
        return None
    form = element(NS_DATA, "x")
    form.set("type", "result")
    for var, values, type_ in (("FORM_TYPE", (form_type,), "hidden"), *((v, vs, "list-multi") for v, vs in filled)):
        field = etree.SubElement(form, f"{{{NS_DATA}}}field", var=var, type=type_)
        for value in values:
            etree.SubElement(field, f"{{{NS_DATA}}}value").text = value
    return form


def require_owner(request: IqRequest, what: str) -> None:
    """Refuse (forbidden) a request that concerns somebody else's account."""
    if not request.is_self:
        raise StanzaError.forbidden(f"You may only access your own {what}")


async def sees_presence(ctx: ModuleContext, target: JID, requester: JID) -> bool:
    """Whether `requester` may see `target`'s presence: it is the same account, or the target's roster
    has the requester with a subscription of 'from' or 'both' (RFC 6121 §3)."""
    if requester.local == target.local and requester.domain == target.domain:
        return True
    if target.local is None:
        return False
    item = await ctx.store(RosterStore).item(target.domain, target.local, str(requester.bare()))
    return item is not None and item.subscription in PRESENCE_SHARING


def encode_limited(payload: etree._Element, max_size: int, what: str) -> bytes:
    """Serialize `payload` for storage; not-acceptable when it is larger than `max_size` bytes."""
    data = etree.tostring(payload, encoding="utf-8")
    if len(data) > max_size:
        raise StanzaError.not_acceptable(f"The {what} is larger than the {max_size}-byte limit")
    return data


def parse_stamp(text: str) -> float:
    """An XEP-0082 date-time from a request (a MAM filter, a MUC history 'since') as POSIX time;
    bad-request when it is not one."""
    try:
        return parse_datetime(text)
    except ValueError as exc:
        raise StanzaError.bad_request(str(exc)) from None


def parse_stored(data: bytes) -> etree._Element:
    """Parse an XML document written by `encode_limited`."""
    return etree.fromstring(data, _STORED_XML)


ServiceIqHandler = Callable[[IqRequest], Awaitable[etree._Element | None]]


async def serve_service_iq(ctx: ModuleContext, event: StanzaEvent, domain: str,
                           handlers: Mapping[tuple[str, str], ServiceIqHandler]) -> None:
    """A stanza to a service domain of a module (upload.<host>, proxy.<host>): an IQ get or set to the
    domain itself goes to the handler for (type, payload tag) and its result is sent back from `domain`;
    a message is refused with service-unavailable; presence, results and errors are ignored."""
    stanza = event.stanza
    if stanza.tag != f"{{{NS_CLIENT}}}iq" or stanza.get("type") not in ("get", "set"):
        if stanza.tag == f"{{{NS_CLIENT}}}message" and stanza.get("type") != "error":
            raise StanzaError.service_unavailable()
        return
    if event.to_jid.local is not None or event.to_jid.resource is not None:
        raise StanzaError.service_unavailable()
    if len(stanza) != 1:
        raise StanzaError.bad_request("An IQ carries exactly one payload element")
    request = IqRequest(stanza, stanza[0], event.from_jid, event.to_jid, event.session)
    handler = handlers.get((stanza.get("type", ""), request.payload.tag))
    if handler is None:
        raise StanzaError.service_unavailable()
    reply = iq_result(stanza, await handler(request), from_=domain)
    reply.set("to", str(event.from_jid))
    await ctx.route(reply)
