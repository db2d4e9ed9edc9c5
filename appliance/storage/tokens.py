"""Invitation links and API tokens: only their SHA-256 is kept, in one 0600 JSON file in the state folder.

A small file rather than a table: there are a handful of records, only the console writes them, and a
lost file only invalidates links and tokens (nothing a user owns).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from appliance.util.files import write_atomically

FILE_NAME = "web-tokens.json"
API_PREFIX = "plr_"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


@dataclass(slots=True)
class Invitation:
    id: str
    digest: str
    host: str
    creator: str
    created: float
    expires: float
    used_by: str = ""

    def valid(self, now: float) -> bool:
        return not self.used_by and now < self.expires


@dataclass(slots=True)
class ApiToken:
    id: str
    digest: str
    owner: str
    label: str
    created: float
    last_used: float = 0.0


@dataclass(slots=True)
class _Records:
    invitations: list[Invitation] = field(default_factory=list)
    api_tokens: list[ApiToken] = field(default_factory=list)


class TokenFile:
    """The records, loaded once and rewritten atomically on every change."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILE_NAME
        self._lock = asyncio.Lock()
        self._records = self._read()

    def _read(self) -> _Records:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return _Records()
        return _Records([Invitation(**i) for i in data.get("invitations", [])],
                        [ApiToken(**t) for t in data.get("api_tokens", [])])

    def _write(self) -> None:
        write_atomically(self.path, json.dumps(asdict(self._records), indent=1), mode=0o600)

    async def _save(self) -> None:
        await asyncio.to_thread(self._write)

    # -- invitations ----------------------------------------------------------------------------

    async def new_invitation(self, host: str, creator: str, lifetime: float) -> tuple[str, Invitation]:
        """A fresh invitation; the secret (the link's last part) is returned once and never stored."""
        secret = secrets.token_urlsafe(24)
        now = time.time()
        record = Invitation(secrets.token_hex(4), digest(secret), host, creator, now, now + lifetime)
        async with self._lock:
            self._records.invitations.append(record)
            await self._save()
        return secret, record

    def invitations(self) -> list[Invitation]:
        return list(self._records.invitations)

    def find_invitation(self, secret: str) -> Invitation | None:
        wanted = digest(secret)
        return next((i for i in self._records.invitations if secrets.compare_digest(i.digest, wanted)), None)

    async def claim_invitation(self, secret: str, jid: str, now: float) -> Invitation | None:
        """Mark the valid invitation behind `secret` as used by `jid`, or None when it is not valid.

        The check and the mark happen before the first await, so of concurrent redemptions exactly one
        gets the record; the others see it used. Undo with `release_invitation` if the account fails.
        """
        record = self.find_invitation(secret)
        if record is None or not record.valid(now):
            return None
        record.used_by = jid
        async with self._lock:
            await self._save()
        return record

    async def release_invitation(self, record: Invitation) -> None:
        """Give a claimed invitation back (its account could not be created)."""
        async with self._lock:
            record.used_by = ""
            await self._save()

    async def revoke_invitation(self, invitation_id: str) -> bool:
        async with self._lock:
            before = len(self._records.invitations)
            self._records.invitations = [i for i in self._records.invitations if i.id != invitation_id]
            if len(self._records.invitations) == before:
                return False
            await self._save()
            return True

    # -- API tokens -----------------------------------------------------------------------------

    async def new_api_token(self, owner: str, label: str) -> tuple[str, ApiToken]:
        secret = API_PREFIX + secrets.token_urlsafe(32)
        record = ApiToken(secrets.token_hex(4), digest(secret), owner, label[:80], time.time())
        async with self._lock:
            self._records.api_tokens.append(record)
            await self._save()
        return secret, record

    def api_tokens(self) -> list[ApiToken]:
        return list(self._records.api_tokens)

    def find_api_token(self, secret: str) -> ApiToken | None:
        if not secret.startswith(API_PREFIX):
            return None
        wanted = digest(secret)
        found = next((t for t in self._records.api_tokens if secrets.compare_digest(t.digest, wanted)), None)
        if found is not None:
            found.last_used = time.time()  # kept in memory; written with the next change
        return found

    async def revoke_api_token(self, token_id: str) -> bool:
        async with self._lock:
            before = len(self._records.api_tokens)
            self._records.api_tokens = [t for t in self._records.api_tokens if t.id != token_id]
            if len(self._records.api_tokens) == before:
                return False
            await self._save()
            return True


__all__ = ["API_PREFIX", "ApiToken", "Invitation", "TokenFile"]
