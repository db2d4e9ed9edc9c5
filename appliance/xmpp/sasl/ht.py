"""The Hashed Token SASL mechanisms (draft-schmaus-kitten-sasl-ht) that FAST (XEP-0484) logs in with.

One round trip: the client sends ``authcid NUL HMAC(token, "Initiator" || cb-data)``; the server
answers ``HMAC(token, "Responder" || cb-data)`` as additional data. ``-NONE`` binds to nothing,
``-ENDP`` to tls-server-end-point, ``-EXPR`` to tls-exporter.
"""

from __future__ import annotations

import hashlib
import hmac

from appliance.xmpp.sasl import SaslFailure

__all__ = ["BINDINGS", "initiator_proof", "mechanism_names", "parse_initial", "responder_proof"]

HASHES: dict[str, str] = {"SHA-256": "sha256"}
# Mechanism suffix -> channel-binding type (None: no channel binding).
BINDINGS: dict[str, str | None] = {"NONE": None, "ENDP": "tls-server-end-point", "EXPR": "tls-exporter"}


def mechanism_names(channel_bindings: dict[str, bytes]) -> list[str]:
    """The HT mechanisms usable on a connection with these channel bindings, binding ones first."""
    names = []
    for hash_name in HASHES:
        for suffix, binding in BINDINGS.items():
            if binding is None or binding in channel_bindings:
                names.append(f"HT-{hash_name}-{suffix}")
    return sorted(names, key=lambda n: n.endswith("-NONE"))


def parse_mechanism(name: str) -> tuple[str, str | None]:
    """``HT-SHA-256-ENDP`` -> ("sha256", "tls-server-end-point"); raises invalid-mechanism."""
    head, _, suffix = name.rpartition("-")
    hash_name = head.removeprefix("HT-")
    if not head.startswith("HT-") or hash_name not in HASHES or suffix not in BINDINGS:
        raise SaslFailure("invalid-mechanism")
    return HASHES[hash_name], BINDINGS[suffix]


def parse_initial(data: bytes) -> tuple[str, bytes]:
    """Split the initial response into (authcid, initiator proof)."""
    authcid, sep, proof = data.partition(b"\0")
    if not sep or not authcid or not proof:
        raise SaslFailure("malformed-request", "HT needs 'authcid NUL proof'")
    try:
        return authcid.decode("utf-8"), proof
    except UnicodeDecodeError:
        raise SaslFailure("malformed-request", "HT user names are UTF-8") from None


def _cb_data(binding: str | None, channel_bindings: dict[str, bytes]) -> bytes:
    if binding is None:
        return b""
    try:
        return channel_bindings[binding]
    except KeyError:
        raise SaslFailure("not-authorized", f"channel binding {binding} is not available here") from None


def initiator_proof(mechanism: str, token: bytes, channel_bindings: dict[str, bytes]) -> bytes:
    digest, binding = parse_mechanism(mechanism)
    return hmac.digest(token, b"Initiator" + _cb_data(binding, channel_bindings), digest)


def responder_proof(mechanism: str, token: bytes, channel_bindings: dict[str, bytes]) -> bytes:
    digest, binding = parse_mechanism(mechanism)
    return hmac.digest(token, b"Responder" + _cb_data(binding, channel_bindings), digest)


def verify(mechanism: str, token: bytes, proof: bytes, channel_bindings: dict[str, bytes]) -> bool:
    """Constant-time check of the client's proof."""
    return hmac.compare_digest(initiator_proof(mechanism, token, channel_bindings), proof)


def token_digest(token: bytes) -> str:
    """A short fingerprint for logs (never log the token itself)."""
    return hashlib.sha256(token).hexdigest()[:12]
