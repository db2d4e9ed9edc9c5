"""The one-time setup token: random, kept in the state folder (0600) for the console to show."""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
from pathlib import Path

TOKEN_FILE = "setup-token"


class SetupToken:
    """Proves that a visitor read the console or journal; valid until setup completes, then gone."""

    def __init__(self, path: Path, value: str) -> None:
        self.path = path
        self._value: str | None = value

    @classmethod
    def load_or_create(cls, state_dir: Path) -> SetupToken:
        """The token of an unfinished setup (same URL after a restart), else a new one."""
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / TOKEN_FILE
        with contextlib.suppress(FileNotFoundError):
            value = path.read_text(encoding="ascii").strip()
            if len(value) >= 32:
                os.chmod(path, 0o600)
                return cls(path, value)
        value = secrets.token_urlsafe(32)
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(value + "\n")
        return cls(path, value)

    @property
    def value(self) -> str:
        if self._value is None:
            raise RuntimeError("the setup token was used up")
        return self._value

    @property
    def used(self) -> bool:
        return self._value is None

    def check(self, offered: str | None) -> bool:
        """Constant-time comparison; always False once setup has completed."""
        expected = self._value
        if expected is None or not offered:
            return False
        return hmac.compare_digest(offered.encode("utf-8", "replace"), expected.encode())

    def consume(self) -> None:
        """Setup completed: the token never works again and its file is removed."""
        self._value = None
        self.path.unlink(missing_ok=True)


__all__ = ["TOKEN_FILE", "SetupToken"]
