"""API tokens: only their SHA-256 is kept, in one 0600 JSON file in the state folder (invitations were
kept here too before they moved to the database; `take_invitations` hands the old ones over).

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
    """An invitation as older versions kept it."""

    id: str
    digest: str
    host: str
    creator: str
    created: float
    expires: float
    used_by: str = ""


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

    # -- invitations (before 0007 they lived here) -------------------------------------------------

    async def take_invitations(self) -> list[Invitation]:
        """The invitation records of older versions, removed from the file (the database holds them now)."""
        async with self._lock:
            taken, self._records.invitations = self._records.invitations, []
            if taken:
                await self._save()
        return taken

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
