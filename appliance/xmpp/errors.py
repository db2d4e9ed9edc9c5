"""Stanza and stream errors (RFC 6120 §8.3 and §4.9) as exceptions that render themselves as XML."""

from __future__ import annotations

import copy
import re
from xml.sax.saxutils import escape

from lxml import etree

from appliance.xmpp.ns import NS_CLIENT, NS_STANZAS, NS_STREAMS, NS_XML

__all__ = ["STANZA_CONDITIONS", "STREAM_CONDITIONS", "StanzaError", "StreamError", "error_reply"]

ERROR_TYPES = frozenset({"auth", "cancel", "continue", "modify", "wait"})

# Condition -> the error type RFC 6120 §8.3.3 says it SHOULD carry (its first choice where it offers two).
STANZA_CONDITIONS: dict[str, str] = {
    "bad-request": "modify",
    "conflict": "cancel",
    "feature-not-implemented": "cancel",
    "forbidden": "auth",
    "gone": "cancel",
    "internal-server-error": "cancel",
    "item-not-found": "cancel",
    "jid-malformed": "modify",
    "not-acceptable": "modify",
    "not-allowed": "cancel",
    "not-authorized": "auth",
    "policy-violation": "modify",
    "recipient-unavailable": "wait",
    "redirect": "modify",
    "registration-required": "auth",
    "remote-server-not-found": "cancel",
    "remote-server-timeout": "wait",
    "resource-constraint": "wait",
    "service-unavailable": "cancel",
    "subscription-required": "auth",
    "undefined-condition": "cancel",
    "unexpected-request": "wait",
}

# RFC 6120 §4.9.3.
STREAM_CONDITIONS = frozenset(
    {
        "bad-format",
        "bad-namespace-prefix",
        "conflict",
        "connection-timeout",
        "host-gone",
        "host-unknown",
        "improper-addressing",
        "internal-server-error",
        "invalid-from",
        "invalid-namespace",
        "invalid-xml",
        "not-authorized",
        "not-well-formed",
        "policy-violation",
        "remote-connection-failed",
        "reset",
        "resource-constraint",
        "restricted-xml",
        "see-other-host",
        "system-shutdown",
        "undefined-condition",
        "unsupported-encoding",
        "unsupported-feature",
        "unsupported-stanza-type",
        "unsupported-version",
    }
)

_XML_LANG = f"{{{NS_XML}}}lang"

AppElement = etree._Element | None

# Characters outside the XML 1.0 Char production: lxml refuses them and peers choke on them.
_NOT_XML_CHAR = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_safe(text: str) -> str:
    """Drop characters XML 1.0 cannot carry, so rendering an error never fails."""
    return _NOT_XML_CHAR.sub("", text)


def _copy_with_default_ns(element: etree._Element) -> etree._Element:
    """Copy ``element`` so it declares its namespace as the default one (no ``ns0:`` prefixes)."""
    namespace = etree.QName(element).namespace
    if namespace is None or element.nsmap.get(None) == namespace:
        return copy.deepcopy(element)
    clone = etree.Element(element.tag, attrib=dict(element.attrib), nsmap={None: namespace})
    clone.text = element.text
    clone.extend(copy.deepcopy(child) for child in element)
    return clone


class StanzaError(Exception):
    """A stanza-level error: raise it where the problem is found, render it at one boundary.

    ``new_address`` is the XMPP URI carried inside ``<gone/>`` or ``<redirect/>``; ``by`` is the
    entity that generated the error (RFC 6120 §8.3.2). ``echo=False`` leaves the original payload out
    of the error reply (it held a secret, e.g. a new password: XEP-0077 §3.3).
    """

    def __init__(
        self,
        condition: str,
        text: str | None = None,
        *,
        type: str | None = None,
        app_element: etree._Element | None = None,
        by: str | None = None,
        new_address: str | None = None,
        echo: bool = True,
    ) -> None:
        if condition not in STANZA_CONDITIONS:
            raise ValueError(f"unknown stanza error condition {condition!r}")
        error_type = type or STANZA_CONDITIONS[condition]
        if error_type not in ERROR_TYPES:
            raise ValueError(f"unknown stanza error type {error_type!r}")
        super().__init__(f"{condition}: {text}" if text else condition)
        self.condition = condition
        self.type = error_type
        self.text = text
        self.app_element = app_element
        self.by = by
        self.new_address = new_address
        self.echo = echo

    def __repr__(self) -> str:
        return f"StanzaError({self.condition!r}, {self.text!r}, type={self.type!r})"

    def to_element(self, ns: str = NS_CLIENT) -> etree._Element:
        """Render as an ``<error/>`` element in the stanza namespace ``ns``."""
        error = etree.Element(f"{{{ns}}}error", nsmap={None: ns})
        self._fill(error)
        return error

    def _fill(self, error: etree._Element) -> None:
        error.set("type", self.type)
        if self.by:
            error.set("by", self.by)
        cond = etree.SubElement(error, f"{{{NS_STANZAS}}}{self.condition}", nsmap={None: NS_STANZAS})
        if self.new_address and self.condition in ("gone", "redirect"):
            cond.text = _xml_safe(self.new_address)
        if self.text:
            text = etree.SubElement(error, f"{{{NS_STANZAS}}}text", nsmap={None: NS_STANZAS})
            text.set(_XML_LANG, "en")
            text.text = _xml_safe(self.text)
        if self.app_element is not None:
            error.append(_copy_with_default_ns(self.app_element))

    @classmethod
    def from_element(cls, error: etree._Element) -> StanzaError:
        """Parse an ``<error/>`` received from another entity (unknown condition: undefined-condition)."""
        condition = "undefined-condition"
        text = new_address = None
        app_element = None
        for child in error:
            if not isinstance(child.tag, str):
                continue  # comments and processing instructions
            qname = etree.QName(child)
            if qname.namespace == NS_STANZAS and qname.localname == "text":
                text = child.text or None
            elif qname.namespace == NS_STANZAS and qname.localname in STANZA_CONDITIONS:
                condition = qname.localname
                new_address = (child.text or "").strip() or None
            elif qname.namespace != NS_STANZAS and app_element is None:
                app_element = copy.deepcopy(child)
        error_type = error.get("type")
        if error_type not in ERROR_TYPES:
            error_type = None
        return cls(
            condition,
            text,
            type=error_type,
            app_element=app_element,
            by=error.get("by"),
            new_address=new_address,
        )

    # One constructor per RFC 6120 §8.3.3 condition, each with the RFC's default type.
    @classmethod
    def bad_request(
        cls, text: str | None = None, *, type: str | None = None, app_element: AppElement = None
    ) -> StanzaError:
        return cls("bad-request", text, type=type, app_element=app_element)

    @classmethod
    def conflict(
        cls, text: str | None = None, *, type: str | None = None, app_element: AppElement = None
    ) -> StanzaError:
        return cls("conflict", text, type=type, app_element=app_element)

    @classmethod
    def feature_not_implemented(
        cls, text: str | None = None, *, type: str | None = None, app_element: AppElement = None
    ) -> StanzaError:
        return cls("feature-not-implemented", text, type=type, app_element=app_element)

    @classmethod
    def forbidden(
        cls, text: str | None = None, *, type: str | None = None, app_element: AppElement = None
    ) -> StanzaError:
        return cls("forbidden", text, type=type, app_element=app_element)

    @classmethod
    def gone(
        cls,
        text: str | None = None,
        *,
        type: str | None = None,
        app_element: AppElement = None,
        new_address: str | None = None,
    ) -> StanzaError:
        return cls("gone", text, type=type, app_element=app_element, new_address=new_address)

    @classmethod
    def internal_server_error(
        cls, text: str | None = None, *, type: str | None = None, app_element: AppElement = None
    ) -> StanzaError:
        return cls("internal-server-error", text, type=type, app_element=app_element)

    @classmethod
    def item_not_found(
        cls, text: str | None = None, *, type: str | None = None, app_element: AppElement = None
    ) -> StanzaError:
        return cls("item-not-found", text, type=type, app_element=app_element)

    @classmethod
    def jid_malformed(
        cls, text: str | None = None, *, type: str | None = None, app_element: AppElement = None
    ) -> StanzaError:
        return cls("jid-malformed", text, type=type, app_element=app_element)

    @classmethod
    def not_acceptable(
        cls, text: str | None = None, *, type: str | None = None, app_element: AppElement = None
    ) -> StanzaError:
        return cls("not-acceptable", text, type=type, app_element=app_element)

    @classmethod
    def not_allowed(
        cls, text: str | None = None, *, type: str | None = None, app_element: AppElement = None
    ) -> StanzaError:
        return cls("not-allowed", text, type=type, app_element=app_element)

    @classmethod
    def not_authorized(
        cls, text: str | None = None, *, type: str | None = None, app_element: AppElement = None
    ) -> StanzaError:
        return cls("not-authorized", text, type=type, app_element=app_element)

    @classmethod
    def policy_violation(
        cls, text: str | None = None, *, type: str | None = None, app_element: AppElement = None
    ) -> StanzaError:
        return cls("policy-violation", text, type=type, app_element=app_element)

    @classmethod
    def recipient_unavailable(
        cls, text: str | None = None, *, type: str | None = None, app_element: AppElement = None
    ) -> StanzaError:
        return cls("recipient-unavailable", text, type=type, app_element=app_element)

    @classmethod
    def redirect(
        cls,
        text: str | None = None,
        *,
        type: str | None = None,
        app_element: AppElement = None,
        new_address: str | None = None,
    ) -> StanzaError:
        return cls("redirect", text, type=type, app_element=app_element, new_address=new_address)

    @classmethod
    def registration_required(
        cls, text: str | None = None, *, type: str | None = None, app_element: AppElement = None
    ) -> StanzaError:
        return cls("registration-required", text, type=type, app_element=app_element)

    @classmethod
    def remote_server_not_found(
        cls, text: str | None = None, *, type: str | None = None, app_element: AppElement = None
    ) -> StanzaError:
        return cls("remote-server-not-found", text, type=type, app_element=app_element)

    @classmethod
    def remote_server_timeout(
        cls, text: str | None = None, *, type: str | None = None, app_element: AppElement = None
    ) -> StanzaError:
        return cls("remote-server-timeout", text, type=type, app_element=app_element)

    @classmethod
    def resource_constraint(
        cls, text: str | None = None, *, type: str | None = None, app_element: AppElement = None
    ) -> StanzaError:
        return cls("resource-constraint", text, type=type, app_element=app_element)

    @classmethod
    def service_unavailable(
        cls, text: str | None = None, *, type: str | None = None, app_element: AppElement = None
    ) -> StanzaError:
        return cls("service-unavailable", text, type=type, app_element=app_element)

    @classmethod
    def subscription_required(
        cls, text: str | None = None, *, type: str | None = None, app_element: AppElement = None
    ) -> StanzaError:
        return cls("subscription-required", text, type=type, app_element=app_element)

    @classmethod
    def undefined_condition(
        cls, text: str | None = None, *, type: str | None = None, app_element: AppElement = None
    ) -> StanzaError:
        return cls("undefined-condition", text, type=type, app_element=app_element)

    @classmethod
    def unexpected_request(
        cls, text: str | None = None, *, type: str | None = None, app_element: AppElement = None
    ) -> StanzaError:
        return cls("unexpected-request", text, type=type, app_element=app_element)


def error_reply(stanza: etree._Element, err: StanzaError) -> etree._Element:
    """Build the error stanza answering ``stanza`` (RFC 6120 §8.3.1).

    The reply has the same tag, namespace and id, swapped addresses, ``type="error"``, copies of the
    original children, then the ``<error/>``. Answering an error with an error is a bug (it can
    loop between two entities), so that raises ``ValueError``.
    """
    if stanza.get("type") == "error":
        raise ValueError("an error stanza must never be answered with another error")
    ns = etree.QName(stanza).namespace or NS_CLIENT
    reply = etree.Element(stanza.tag, nsmap={None: ns})
    for name, value in (("id", stanza.get("id")), ("to", stanza.get("from")), ("from", stanza.get("to"))):
        if value is not None:
            reply.set(name, value)
    reply.set("type", "error")
    lang = stanza.get(_XML_LANG)
    if lang is not None:
        reply.set(_XML_LANG, lang)
    if err.echo:
        for child in stanza:
            reply.append(copy.deepcopy(child))
    err._fill(etree.SubElement(reply, f"{{{ns}}}error"))
    return reply


class StreamError(Exception):
    """A stream-level error (RFC 6120 §4.9); the driver sends it and closes the stream.

    ``other_host`` is the address carried inside ``<see-other-host/>``.
    """

    def __init__(self, condition: str, text: str | None = None, *, other_host: str | None = None) -> None:
        if condition not in STREAM_CONDITIONS:
            raise ValueError(f"unknown stream error condition {condition!r}")
        super().__init__(f"{condition}: {text}" if text else condition)
        self.condition = condition
        self.text = text
        self.other_host = other_host

    def __repr__(self) -> str:
        return f"StreamError({self.condition!r}, {self.text!r})"

    def to_bytes(self) -> bytes:
        """Serialize as ``<stream:error>``; the ``stream`` prefix is bound by the open stream header."""
        body = ""
        if self.other_host and self.condition == "see-other-host":
            body = escape(_xml_safe(self.other_host))
        parts = [f"<stream:error><{self.condition} xmlns='{NS_STREAMS}'"]
        parts.append(f">{body}</{self.condition}>" if body else "/>")
        if self.text:
            parts.append(f"<text xmlns='{NS_STREAMS}' xml:lang='en'>{escape(_xml_safe(self.text))}</text>")
        parts.append("</stream:error>")
        return "".join(parts).encode("utf-8")

    @classmethod
    def from_element(cls, error: etree._Element) -> StreamError:
        """Parse a ``<stream:error/>`` received from a peer (unknown condition: undefined-condition)."""
        condition, text, other_host = "undefined-condition", None, None
        for child in error:
            if not isinstance(child.tag, str):
                continue
            qname = etree.QName(child)
            if qname.namespace != NS_STREAMS:
                continue
            if qname.localname == "text":
                text = child.text or None
            elif qname.localname in STREAM_CONDITIONS:
                condition = qname.localname
                other_host = (child.text or "").strip() or None
        return cls(condition, text, other_host=other_host if condition == "see-other-host" else None)

    # One constructor per RFC 6120 §4.9.3 condition.
    @classmethod
    def bad_format(cls, text: str | None = None) -> StreamError:
        return cls("bad-format", text)

    @classmethod
    def bad_namespace_prefix(cls, text: str | None = None) -> StreamError:
        return cls("bad-namespace-prefix", text)

    @classmethod
    def conflict(cls, text: str | None = None) -> StreamError:
        return cls("conflict", text)

    @classmethod
    def connection_timeout(cls, text: str | None = None) -> StreamError:
        return cls("connection-timeout", text)

    @classmethod
    def host_gone(cls, text: str | None = None) -> StreamError:
        return cls("host-gone", text)

    @classmethod
    def host_unknown(cls, text: str | None = None) -> StreamError:
        return cls("host-unknown", text)

    @classmethod
    def improper_addressing(cls, text: str | None = None) -> StreamError:
        return cls("improper-addressing", text)

    @classmethod
    def internal_server_error(cls, text: str | None = None) -> StreamError:
        return cls("internal-server-error", text)

    @classmethod
    def invalid_from(cls, text: str | None = None) -> StreamError:
        return cls("invalid-from", text)

    @classmethod
    def invalid_namespace(cls, text: str | None = None) -> StreamError:
        return cls("invalid-namespace", text)

    @classmethod
    def invalid_xml(cls, text: str | None = None) -> StreamError:
        return cls("invalid-xml", text)

    @classmethod
    def not_authorized(cls, text: str | None = None) -> StreamError:
        return cls("not-authorized", text)

    @classmethod
    def not_well_formed(cls, text: str | None = None) -> StreamError:
        return cls("not-well-formed", text)

    @classmethod
    def policy_violation(cls, text: str | None = None) -> StreamError:
        return cls("policy-violation", text)

    @classmethod
    def remote_connection_failed(cls, text: str | None = None) -> StreamError:
        return cls("remote-connection-failed", text)

    @classmethod
    def reset(cls, text: str | None = None) -> StreamError:
        return cls("reset", text)

    @classmethod
    def resource_constraint(cls, text: str | None = None) -> StreamError:
        return cls("resource-constraint", text)

    @classmethod
    def restricted_xml(cls, text: str | None = None) -> StreamError:
        return cls("restricted-xml", text)

    @classmethod
    def see_other_host(cls, other_host: str, text: str | None = None) -> StreamError:
        return cls("see-other-host", text, other_host=other_host)

    @classmethod
    def system_shutdown(cls, text: str | None = None) -> StreamError:
        return cls("system-shutdown", text)

    @classmethod
    def undefined_condition(cls, text: str | None = None) -> StreamError:
        return cls("undefined-condition", text)

    @classmethod
    def unsupported_encoding(cls, text: str | None = None) -> StreamError:
        return cls("unsupported-encoding", text)

    @classmethod
    def unsupported_feature(cls, text: str | None = None) -> StreamError:
        return cls("unsupported-feature", text)

    @classmethod
    def unsupported_stanza_type(cls, text: str | None = None) -> StreamError:
        return cls("unsupported-stanza-type", text)

    @classmethod
    def unsupported_version(cls, text: str | None = None) -> StreamError:
        return cls("unsupported-version", text)
