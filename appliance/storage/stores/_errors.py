"""Translate constraint failures of either engine into the storage API's exceptions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from appliance.storage.api import UnknownAccount
from appliance.storage.engine import CONSTRAINT_ERRORS, foreign_key_failed


@contextmanager
def account_required(host: str, username: str) -> Iterator[None]:
    """Turn a foreign-key failure on (host, username) into ``UnknownAccount``."""
    try:
        yield
    except CONSTRAINT_ERRORS as exc:
        if foreign_key_failed(exc):
            raise UnknownAccount(f"no account {username}@{host}") from exc
        raise
