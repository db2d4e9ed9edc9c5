"""SASL mechanisms for XMPP (RFC 6120 §6), server side, sans-IO."""

from __future__ import annotations

from lxml import etree

from appliance.xmpp.ns import NS_SASL, NS_XML

__all__ = ["FAILURE_CONDITIONS", "SaslFailure"]

# RFC 6120 §6.5.
FAILURE_CONDITIONS = frozenset(
    {
        "aborted",
        "account-disabled",
        "credentials-expired",
        "encryption-required",
        "incorrect-encoding",
        "invalid-authzid",
        "invalid-mechanism",
        "malformed-request",
        "mechanism-too-weak",
        "not-authorized",
        "temporary-auth-failure",
    }
)


class SaslFailure(Exception):
    """An authentication exchange that ends in ``<failure/>`` with ``condition``.

    ``text`` goes to the client; keep passwords, proofs and other SASL data out of it.
    """

    def __init__(self, condition: str, text: str | None = None) -> None:
        if condition not in FAILURE_CONDITIONS:
            raise ValueError(f"unknown SASL failure condition {condition!r}")
        super().__init__(f"{condition}: {text}" if text else condition)
        self.condition = condition
        self.text = text

    def __repr__(self) -> str:
        return f"SaslFailure({self.condition!r}, {self.text!r})"

    def to_element(self) -> etree._Element:
        """Render as ``<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>``."""
        failure = etree.Element(f"{{{NS_SASL}}}failure", nsmap={None: NS_SASL})
        etree.SubElement(failure, f"{{{NS_SASL}}}{self.condition}")
        if self.text:
            text = etree.SubElement(failure, f"{{{NS_SASL}}}text")
            text.set(f"{{{NS_XML}}}lang", "en")
            text.text = self.text
        return failure
