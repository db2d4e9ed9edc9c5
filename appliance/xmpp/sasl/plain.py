"""SASL PLAIN (RFC 4616) message parsing; only offer it inside TLS."""

from __future__ import annotations

from appliance.xmpp.sasl import SaslFailure

__all__ = ["MAX_AUTHCID_BYTES", "MAX_AUTHZID_BYTES", "MAX_PASSWORD_BYTES", "parse"]

# RFC 4616 asks servers to accept at least 255 octets per field; we take what a JID can hold.
MAX_AUTHZID_BYTES = 3071  # a full JID: three parts of 1023 bytes plus separators
MAX_AUTHCID_BYTES = 1023
MAX_PASSWORD_BYTES = 1023


def parse(data: bytes) -> tuple[str, str, str]:
    """Split ``[authzid] NUL authcid NUL passwd`` into ``(authzid, authcid, password)``.

    ``authzid`` is ``""`` when absent. Raises ``SaslFailure("malformed-request")`` on anything else:
    a wrong number of fields, an empty authcid or password, bad UTF-8, or an over-long field.
    """
    fields = data.split(b"\0")
    if len(fields) != 3:
        raise SaslFailure("malformed-request", "PLAIN needs exactly three NUL-separated fields")
    authzid, authcid, password = fields
    if not authcid or not password:
        raise SaslFailure("malformed-request", "PLAIN needs a user name and a password")
    if (
        len(authzid) > MAX_AUTHZID_BYTES
        or len(authcid) > MAX_AUTHCID_BYTES
        or len(password) > MAX_PASSWORD_BYTES
    ):
        raise SaslFailure("malformed-request", "PLAIN field too long")
    try:
        return authzid.decode("utf-8"), authcid.decode("utf-8"), password.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslFailure("malformed-request", "PLAIN fields must be UTF-8") from None
