"""Files of HTTP File Upload (XEP-0363) in the state folder: slots, quota, signed URLs and expiry.

Layout: ``<root>/<owner>/<slot>/meta.json`` and ``<root>/<owner>/<slot>/file``, where ``owner`` is an
HMAC of the account (so URLs do not reveal it) and ``slot`` a random token (the secret in the URL).
The XMPP side reserves slots, the web side stores and serves the bytes; both build an ``UploadFiles``
on the same folder and share its secret file. Blocking file work runs in threads.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
from dataclasses import asdict
from pathlib import Path

from appliance.storage.api import UploadSlot

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
META = "meta.json"
DATA = "file"


class UploadFiles:
    """``storage.api.UploadArea``: the upload folder of one server."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._secret: bytes | None = None

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            self.root.mkdir(parents=True, exist_ok=True)
            path = self.root / ".secret"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as f:
                    f.write(secrets.token_bytes(32))
            self._secret = path.read_bytes()
        return self._secret

    def owner_key(self, account: str) -> str:
        return hmac.new(self.secret, b"owner:" + account.encode(), hashlib.sha256).hexdigest()[:24]

    def signature(self, slot: UploadSlot, expires: int) -> str:
        """What a PUT URL carries: binds the slot, its size and type, and the URL's expiry."""
        text = f"{slot.path}\n{slot.size}\n{slot.content_type}\n{expires}"
        return hmac.new(self.secret, b"put:" + text.encode(), hashlib.sha256).hexdigest()

    def verify(self, slot: UploadSlot, expires: str, signature: str, now: float) -> bool:
        if not expires.isdigit() or int(expires) < now:
            return False
        return hmac.compare_digest(self.signature(slot, int(expires)), signature)

    def _dir(self, owner: str, slot: str) -> Path | None:
        if not (_TOKEN.match(owner) and _TOKEN.match(slot)):
            return None
        return self.root / owner / slot

    # -- blocking helpers, run in threads ------------------------------------------------------

    def _slots(self, owner_dir: Path) -> list[UploadSlot]:
        found = []
        for meta in owner_dir.glob(f"*/{META}"):
            try:
                found.append(UploadSlot(**json.loads(meta.read_text())))
            except (OSError, ValueError, TypeError):
                continue
        return found

    def _reserve(
        self, account: str, name: str, size: int, content_type: str, now: float, quota: int
    ) -> UploadSlot | None:
        owner = self.owner_key(account)
        owner_dir = self.root / owner
        used = sum(s.size for s in self._slots(owner_dir)) if owner_dir.exists() else 0
        if used + size > quota:
            return None
        slot = UploadSlot(owner, secrets.token_urlsafe(18), name, size, content_type, now)
        directory = owner_dir / slot.slot
        directory.mkdir(parents=True)
        self._write_meta(directory, slot)
        return slot

    @staticmethod
    def _write_meta(directory: Path, slot: UploadSlot) -> None:
        tmp = directory / (META + ".tmp")
        tmp.write_text(json.dumps(asdict(slot)))
        os.replace(tmp, directory / META)

    def _load(self, owner: str, slot: str) -> UploadSlot | None:
        directory = self._dir(owner, slot)
        if directory is None:
            return None
        try:
            return UploadSlot(**json.loads((directory / META).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def _purge(self, now: float, expiry: float, slot_lifetime: float) -> int:
        removed = 0
        if not self.root.exists():
            return 0
        for owner_dir in (p for p in self.root.iterdir() if p.is_dir()):
            for slot in self._slots(owner_dir):
                lapsed = not slot.uploaded and slot.created + slot_lifetime < now
                expired = slot.uploaded and expiry > 0 and slot.created + expiry < now
                if lapsed or expired:
                    shutil.rmtree(owner_dir / slot.slot, ignore_errors=True)
                    removed += 1
        return removed

    # -- async API ------------------------------------------------------------------------------

    async def reserve(
        self, account: str, name: str, size: int, content_type: str, now: float, quota: int
    ) -> UploadSlot | None:
        """Reserve a slot for `account` (bare JID); None when it would exceed `quota` bytes."""
        return await asyncio.to_thread(self._reserve, account, name, size, content_type, now, quota)

    async def load(self, owner: str, slot: str) -> UploadSlot | None:
        return await asyncio.to_thread(self._load, owner, slot)

    def data_path(self, slot: UploadSlot) -> Path:
        return self.root / slot.owner / slot.slot / DATA

    async def finish(self, slot: UploadSlot, temp: Path, now: float) -> UploadSlot:
        """Move a completely received file in place and mark the slot uploaded (expiry starts now)."""
        done = UploadSlot(slot.owner, slot.slot, slot.name, slot.size, slot.content_type, now, True)

        def move() -> None:
            os.replace(temp, self.data_path(slot))
            self._write_meta(self.root / slot.owner / slot.slot, done)

        await asyncio.to_thread(move)
        return done

    async def purge(self, now: float, expiry: float, slot_lifetime: float) -> int:
        """Delete files older than `expiry` (0: never) and slots never used within `slot_lifetime`."""
        return await asyncio.to_thread(self._purge, now, expiry, slot_lifetime)


__all__ = ["UploadFiles", "UploadSlot"]
