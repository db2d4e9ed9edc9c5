"""SCRAM (RFC 5802, RFC 7677) server side, with -PLUS channel binding (RFC 5929, RFC 9266).

One ``ScramServer`` per authentication attempt::

    server = ScramServer("SHA-256", plus=False, channel_bindings={}, fake_secret=secret)
    username = server.first(client_first)          # look the account up by this name
    challenge = server.challenge(keys_or_none)     # None: unknown user, answered with a fake salt
    success_data = server.final(client_final)      # raises SaslFailure; else send as <success/>

Key derivation (PBKDF2) is slow by design: callers run ``derive_keys`` off the event loop.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from typing import Protocol

import precis_i18n
from Crypto.Hash import SHA1, SHA256, SHA512
from Crypto.Protocol.KDF import PBKDF2

from appliance.xmpp.sasl import SaslFailure

__all__ = [
    "CHANNEL_BINDING_TYPES",
    "HASHES",
    "ScramKeysLike",
    "ScramServer",
    "derive_keys",
    "keys_from_salted_password",
    "mechanism_names",
    "parse_mechanism",
    "salted_password",
    "ssdp_hash",
]

# SCRAM hash name -> hashlib name, strongest first (also the order mechanisms are offered in).
HASHES: dict[str, str] = {"SHA-512": "sha512", "SHA-256": "sha256", "SHA-1": "sha1"}
# PBKDF2 runs on pycryptodome: its C loop keeps the HMAC states between rounds and is about twice as
# fast as OpenSSL's for SHA-256 (0.42 against 0.96 ms for 4096 rounds here), the PLAIN check's cost.
_PBKDF2_HASH = {"sha512": SHA512, "sha256": SHA256, "sha1": SHA1}
CHANNEL_BINDING_TYPES = frozenset({"tls-exporter", "tls-server-end-point"})

FAKE_SALT_BYTES = 16
DEFAULT_ITERATIONS = 4096
MAX_MESSAGE_BYTES = 8192

_OPAQUE = precis_i18n.get_profile("OpaqueString")
# Used when the caller passes no fake_secret: stable for this process only, so restarts change the
# fake salts; the composition root should pass a persistent secret.
_PROCESS_FAKE_SECRET = secrets.token_bytes(32)

_SASLNAME = re.compile(r"(?:[^=,\x00]|=2C|=3D)+")
_NONCE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")  # printable ASCII except ","
_CB_NAME = re.compile(r"[A-Za-z0-9.-]+")
_ATTRIBUTE = re.compile(r"[A-Za-z]=")


class ScramKeysLike(Protocol):
    """What ``ScramServer.challenge`` needs of a stored credential (e.g. storage's ``ScramKeys``)."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def mechanism_names(has_tls: bool, channel_bindings: dict[str, bytes]) -> list[str]:
    """The SASL mechanisms to offer, best first; PLAIN only inside TLS."""
    names = [f"SCRAM-{h}-PLUS" for h in HASHES] if channel_bindings else []
    names += [f"SCRAM-{h}" for h in HASHES]
    if has_tls:
        names.append("PLAIN")
    return names


def ssdp_hash(hash_name: str, mechanisms: list[str], channel_bindings: list[str] | None) -> str:
    """XEP-0474: base64 of H(sorted mechanisms joined by 0x1E [+ 0x1F + sorted binding types joined by 0x1E]).

    ``channel_bindings`` is None when the server did not advertise XEP-0440 channel-binding types.
    Sorting is by octets (i;octet), which is what sorting the encoded strings gives.
    """
    text = "\x1e".join(sorted(mechanisms, key=str.encode))
    if channel_bindings is not None:
        text += "\x1f" + "\x1e".join(sorted(channel_bindings, key=str.encode))
    return _b64(hashlib.new(_hashlib_name(hash_name), text.encode()).digest())


def parse_mechanism(name: str) -> tuple[str, bool]:
    """Map ``SCRAM-SHA-256-PLUS`` to ``("SHA-256", True)``; raises ``SaslFailure("invalid-mechanism")``."""
    plus = name.endswith("-PLUS")
    hash_name = name.removeprefix("SCRAM-").removesuffix("-PLUS")
    if not name.startswith("SCRAM-") or hash_name not in HASHES:
        raise SaslFailure("invalid-mechanism")
    return hash_name, plus


def salted_password(password: str, hash_name: str, salt: bytes, iterations: int) -> bytes:
    """SaltedPassword = Hi(Normalize(password), salt, i); the password is prepared as OpaqueString.

    Raises ``ValueError`` for a password the OpaqueString profile refuses (empty, control characters).
    """
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    try:
        prepared = _OPAQUE.enforce(password)
    except UnicodeError as exc:
        raise ValueError(f"password not allowed: {exc.reason}") from None
    module = _PBKDF2_HASH[_hashlib_name(hash_name)]
    return PBKDF2(prepared.encode("utf-8"), salt, module.digest_size, iterations, hmac_hash_module=module)


def keys_from_salted_password(hash_name: str, salted: bytes) -> tuple[bytes, bytes]:
    """(StoredKey, ServerKey) from a SaltedPassword, e.g. one imported from another server."""
    digest = _hashlib_name(hash_name)
    client_key = hmac.digest(salted, b"Client Key", digest)
    server_key = hmac.digest(salted, b"Server Key", digest)
    return hashlib.new(digest, client_key).digest(), server_key


def derive_keys(password: str, hash_name: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    """(StoredKey, ServerKey) for storing a password; slow (PBKDF2), so keep it off the event loop."""
    return keys_from_salted_password(hash_name, salted_password(password, hash_name, salt, iterations))


def _hashlib_name(hash_name: str) -> str:
    try:
        return HASHES[hash_name]
    except KeyError:
        raise ValueError(f"unsupported SCRAM hash {hash_name!r}") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SaslFailure("malformed-request", f"{what} is not valid base64") from None


def _saslname(value: str, what: str) -> str:
    if not _SASLNAME.fullmatch(value):
        raise SaslFailure("malformed-request", f"malformed {what}")
    return value.replace("=2C", ",").replace("=3D", "=")


def _decode(message: bytes) -> str:
    if len(message) > MAX_MESSAGE_BYTES:
        raise SaslFailure("malformed-request", "SCRAM message too long")
    try:
        return message.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslFailure("malformed-request", "SCRAM messages are UTF-8") from None


def _check_extensions(attributes: list[str]) -> None:
    """Optional extensions are ignored, but each must still look like ``x=value``."""
    for attribute in attributes:
        if not _ATTRIBUTE.match(attribute):
            raise SaslFailure("malformed-request", "malformed SCRAM attribute")


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


class ScramServer:
    """Server side of one SCRAM exchange; call ``first``, ``challenge``, ``final`` in that order.

    ``plus``: the client chose a ``-PLUS`` mechanism. ``channel_bindings``: the data for each channel
    binding type this connection offers (empty when -PLUS is not advertised); a client saying ``y``
    while it is non-empty is a downgrade and fails. ``nonce``: the server's nonce part (tests only).
    ``fake_secret``: persistent server secret for the stable fake salts of unknown users;
    ``fake_iterations`` should match the iteration count real accounts use. ``downgrade_protection``:
    the (mechanisms, channel-binding types or None) the client was offered, signed into the
    server-first-message as XEP-0474's ``h`` attribute.
    """

    def __init__(
        self,
        hash_name: str,
        *,
        plus: bool,
        channel_bindings: dict[str, bytes],
        nonce: str | None = None,
        fake_secret: bytes | None = None,
        fake_iterations: int = DEFAULT_ITERATIONS,
        downgrade_protection: tuple[list[str], list[str] | None] | None = None,
    ) -> None:
        self._digest = _hashlib_name(hash_name)
        self._ssdp = ssdp_hash(hash_name, *downgrade_protection) if downgrade_protection is not None else None
        if plus and not channel_bindings:
            raise ValueError("SCRAM -PLUS needs channel binding data")
        if nonce is not None and not _NONCE.fullmatch(nonce):
            raise ValueError("a SCRAM nonce is printable ASCII without ','")
        self.hash_name = hash_name
        self.plus = plus
        self._bindings = dict(channel_bindings)
        self._server_nonce = nonce or secrets.token_urlsafe(24)
        self._fake_secret = _PROCESS_FAKE_SECRET if fake_secret is None else fake_secret
        self._fake_iterations = fake_iterations
        self._state = "start"
        self.username: str | None = None
        self.authzid: str | None = None
        self.cb_type: str | None = None
        self._gs2_header = ""
        self._client_first_bare = ""
        self._nonce = ""
        self._server_first = ""
        self._stored_key: bytes | None = None
        self._server_key = b""

    @property
    def mechanism(self) -> str:
        """The SASL mechanism name, e.g. ``SCRAM-SHA-256-PLUS``."""
        return f"SCRAM-{self.hash_name}{'-PLUS' if self.plus else ''}"

    @property
    def succeeded(self) -> bool:
        return self._state == "done"

    def first(self, client_first: bytes) -> str:
        """Parse the client-first-message; return the user name (``=2C``/``=3D`` decoded, not prepared)."""
        self._advance("start", "first")
        try:
            self.username = self._parse_first(_decode(client_first))
        except SaslFailure as failure:
            raise self._fail(failure.condition, failure.text) from None
        return self.username

    def challenge(self, keys: ScramKeysLike | None) -> bytes:
        """The server-first-message; ``keys=None`` (unknown user) answers with a stable fake salt."""
        self._advance("first", "challenged")
        if keys is None:
            salt, iterations = self._fake_salt(), self._fake_iterations
        else:
            size = hashlib.new(self._digest).digest_size
            if len(keys.stored_key) != size or len(keys.server_key) != size:
                raise ValueError(f"stored keys are not {self.hash_name} keys")
            salt, iterations = keys.salt, keys.iterations
            self._stored_key, self._server_key = keys.stored_key, keys.server_key
        self._server_first = f"r={self._nonce},s={_b64(salt)},i={iterations}"
        if self._ssdp is not None:
            self._server_first += f",h={self._ssdp}"
        return self._server_first.encode("ascii")

    def final(self, client_final: bytes) -> bytes:
        """Verify the client-final-message; return the server-final-message (``v=...``, not base64'd).

        Raises ``SaslFailure``: ``malformed-request`` for syntax, ``not-authorized`` for a wrong
        proof, nonce or channel binding, or an unknown user.
        """
        self._advance("challenged", "final")
        try:
            verifier = self._verify(_decode(client_final))
        except SaslFailure as failure:
            raise self._fail(failure.condition, failure.text) from None
        self._state = "done"
        return b"v=" + _b64(verifier).encode("ascii")

    # -- internals ---------------------------------------------------------------------------

    def _advance(self, expected: str, new: str) -> None:
        if self._state != expected:
            raise RuntimeError(f"SCRAM step out of order (state {self._state})")
        self._state = new

    def _fail(self, condition: str, text: str | None = None) -> SaslFailure:
        self._state = "failed"
        self._stored_key = None
        return SaslFailure(condition, text)

    def _parse_first(self, message: str) -> str:
        header = message.split(",", 2)
        if len(header) != 3:
            raise SaslFailure("malformed-request", "malformed GS2 header")
        flag, authzid, bare = header
        self._check_binding_flag(flag)
        if authzid:
            if not authzid.startswith("a="):
                raise SaslFailure("malformed-request", "malformed authzid")
            self.authzid = _saslname(authzid[2:], "authzid")
        username, client_nonce = self._parse_bare(bare)
        self._gs2_header = f"{flag},{authzid},"
        self._client_first_bare = bare
        self._nonce = client_nonce + self._server_nonce
        return username

    def _check_binding_flag(self, flag: str) -> None:
        """Enforce the gs2-cbind-flag rules of RFC 5802 §6, including downgrade detection."""
        if flag.startswith("p="):
            cb_type = flag[2:]
            if not _CB_NAME.fullmatch(cb_type):
                raise SaslFailure("malformed-request", "malformed channel binding type")
            if not self.plus:
                raise SaslFailure("malformed-request", "channel binding needs a -PLUS mechanism")
            if cb_type not in self._bindings:
                raise SaslFailure("not-authorized", f"channel binding type {cb_type} is not offered")
            self.cb_type = cb_type
        elif flag in ("n", "y"):
            if self.plus:
                raise SaslFailure("malformed-request", f"{self.mechanism} needs channel binding")
            if flag == "y" and self._bindings:
                raise SaslFailure("not-authorized", "channel binding downgrade detected")
        else:
            raise SaslFailure("malformed-request", "malformed GS2 header")

    @staticmethod
    def _parse_bare(bare: str) -> tuple[str, str]:
        attributes = bare.split(",")
        if attributes[0].startswith("m="):
            raise SaslFailure("malformed-request", "unsupported mandatory SCRAM extension")
        if len(attributes) < 2 or not attributes[0].startswith("n=") or not attributes[1].startswith("r="):
            raise SaslFailure("malformed-request", "malformed client-first-message")
        _check_extensions(attributes[2:])
        username = _saslname(attributes[0][2:], "username")
        client_nonce = attributes[1][2:]
        if not _NONCE.fullmatch(client_nonce):
            raise SaslFailure("malformed-request", "malformed nonce")
        return username, client_nonce

    def _fake_salt(self) -> bytes:
        message = f"{self.hash_name}\0{self.username}".encode()
        return hmac.digest(self._fake_secret, message, "sha256")[:FAKE_SALT_BYTES]

    def _verify(self, message: str) -> bytes:
        """Check binding, nonce and proof; return the ServerSignature."""
        without_proof, _, proof_attribute = message.rpartition(",")
        attributes = without_proof.split(",")
        if (
            len(attributes) < 2
            or not attributes[0].startswith("c=")
            or not attributes[1].startswith("r=")
            or not proof_attribute.startswith("p=")
        ):
            raise SaslFailure("malformed-request", "malformed client-final-message")
        _check_extensions(attributes[2:])
        cbind_input = _unb64(attributes[0][2:], "channel binding")
        proof = _unb64(proof_attribute[2:], "proof")
        if len(proof) != hashlib.new(self._digest).digest_size:
            raise SaslFailure("malformed-request", "proof has the wrong length")

        expected_cbind = self._gs2_header.encode() + (self._bindings[self.cb_type] if self.cb_type else b"")
        binding_ok = hmac.compare_digest(cbind_input, expected_cbind)
        nonce_ok = hmac.compare_digest(attributes[1][2:].encode(), self._nonce.encode())

        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        known = self._stored_key is not None
        # An unknown user still costs the same work, then fails.
        stored_key = self._stored_key if known else bytes(len(proof))
        client_key = _xor(proof, hmac.digest(stored_key, auth_message, self._digest))
        proof_ok = hmac.compare_digest(hashlib.new(self._digest, client_key).digest(), stored_key)
        if not (binding_ok and nonce_ok and proof_ok and known):
            raise SaslFailure("not-authorized")
        return hmac.digest(self._server_key, auth_message, self._digest)
