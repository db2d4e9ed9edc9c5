"""Checking time-limited TURN credentials (appliance/util/turn_rest.py) and making stateless nonces.

The XMPP server hands the credentials out through XEP-0215; the TURN server checks them without a
database. The long-term credential key of RFC 8489 §9.2 is MD5(username ":" realm ":" password).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from appliance.util.turn_rest import rest_password

NONCE_LIFETIME = 600.0  # seconds a nonce is accepted; then 438 (Stale Nonce) with a fresh one


def long_term_key(username: str, realm: str, password: str) -> bytes:
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).digest()  # RFC 8489 §9.2.2: MD5 is what the key is


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the credential check decided: `key` to check MESSAGE-INTEGRITY with, or an error."""

    key: bytes | None
    user: str = ""
    error: int = 0  # 401 (unknown or expired username) when key is None


class RestCredentials:
    """Checks usernames and derives integrity keys from the shared secret; makes and checks nonces."""

    def __init__(self, secret: str, realm: str, *, now: Callable[[], float] = time.time) -> None:
        self.secret = secret
        self.realm = realm
        self._now = now
        self._nonce_key = os.urandom(16)  # nonces from before a restart are stale: clients just retry

    def check(self, username: str) -> Verdict:
        expiry, sep, user = username.partition(":")
        if not sep or not expiry.isdigit() or not user:
            return Verdict(None, error=401)
        if int(expiry) < self._now():
            return Verdict(None, user=user, error=401)
        return Verdict(long_term_key(username, self.realm, rest_password(self.secret, username)), user=user)

    def nonce(self) -> bytes:
        stamp = struct.pack("!Q", int(self._now()))
        mac = hmac.new(self._nonce_key, stamp, hashlib.sha256).digest()[:12]
        return base64.b16encode(stamp + mac).lower()

    def nonce_fresh(self, nonce: bytes) -> bool:
        try:
            raw = base64.b16decode(nonce.upper())
        except ValueError:
            return False
        if len(raw) != 20:
            return False
        stamp, mac = raw[:8], raw[8:]
        if not hmac.compare_digest(mac, hmac.new(self._nonce_key, stamp, hashlib.sha256).digest()[:12]):
            return False
        return self._now() - struct.unpack("!Q", stamp)[0] <= NONCE_LIFETIME
