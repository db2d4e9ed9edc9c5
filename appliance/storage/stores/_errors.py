"""Translate apsw constraint failures into the storage API's exceptions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import apsw

from appliance.storage.api import UnknownAccount


@contextmanager
def account_required(host: str, username: str) -> Iterator[None]:
    """Turn a foreign-key failure on (host, username) into ``UnknownAccount``."""
    try:
        yield
    except apsw.ConstraintError as exc:
        if exc.extendedresult == apsw.SQLITE_CONSTRAINT_FOREIGNKEY:
            raise UnknownAccount(f"no account {username}@{host}") from exc
        raise
