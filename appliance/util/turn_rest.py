"""The TURN REST API credential scheme (coturn's `use-auth-secret`, ejabberd's and Parlour's TURN server):
username = "<expiry unix time>:<user>", password = base64(HMAC-SHA1(secret, username)). The XMPP side
hands them out (XEP-0215); the TURN server checks them with the same secret and no database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math


def rest_password(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def rest_credentials(secret: str, user: str, expires: float) -> tuple[str, str]:
    """(username, password) valid until `expires` (seconds since the epoch)."""
    username = f"{math.ceil(expires)}:{user}"
    return username, rest_password(secret, username)
