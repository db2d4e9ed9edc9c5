"""FAST tokens (XEP-0484): the two-slot rotation scheme, sans-IO (the time is passed in).

Per account and client (SASL2 user-agent id) there are two slots, 'current' and 'new'. A freshly
issued token goes into 'new'; logging in with the 'new' token moves it to 'current' (the old
current one dies); a client that missed our newest token can still use 'current' once more.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, replace

__all__ = ["FastToken", "TokenSlots"]


@dataclass(frozen=True, slots=True)
class FastToken:
    token: str
    mechanism: str
    expiry: float  # Unix time


@dataclass(frozen=True, slots=True)
class TokenSlots:
    current: FastToken | None = None
    new: FastToken | None = None

    # -- storage form ---------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        def one(t: FastToken | None) -> dict[str, object] | None:
            return None if t is None else {"token": t.token, "mechanism": t.mechanism, "expiry": t.expiry}

        return json.dumps({"current": one(self.current), "new": one(self.new)}).encode()

    @classmethod
    def from_bytes(cls, data: bytes | None) -> TokenSlots:
        if not data:
            return cls()
        raw = json.loads(data)

        def one(value: object) -> FastToken | None:
            if not isinstance(value, dict):
                return None
            return FastToken(str(value["token"]), str(value["mechanism"]), float(value["expiry"]))

        return cls(one(raw.get("current")), one(raw.get("new")))

    # -- the scheme -----------------------------------------------------------------------------

    def issue(self, mechanism: str, now: float, lifetime: float) -> tuple[TokenSlots, FastToken]:
        """A new token in the 'new' slot (replacing an unused one there)."""
        token = FastToken(secrets.token_urlsafe(32), mechanism, now + lifetime)
        return replace(self, new=token), token

    def use(self, mechanism: str, matches: object, now: float) -> tuple[TokenSlots, FastToken] | None:
        """Find the slot whose token `matches(token_bytes)` for this mechanism and is not expired.

        Returns the updated slots and the token used, or None. Using 'new' promotes it to 'current'.
        """
        for slot in ("new", "current"):
            token: FastToken | None = getattr(self, slot)
            if token is None or token.mechanism != mechanism or token.expiry <= now:
                continue
            if matches(token.token.encode()):  # type: ignore[operator]
                if slot == "new":
                    return TokenSlots(current=token, new=None), token
                return self, token
        return None

    def expired(self, now: float) -> bool:
        return all(t is None or t.expiry <= now for t in (self.current, self.new))
