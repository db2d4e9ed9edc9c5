"""What a store needs from a database engine, whichever engine it is (SQLite or PostgreSQL).

A store's job is a plain function of one ``Connection`` run on a database thread inside a transaction.
Its SQL is written once, in the dialect SQLite and PostgreSQL share, with ``?`` placeholders; the
PostgreSQL connection translates them. Constraint failures surface as ``CONSTRAINT_ERRORS`` on both.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

import apsw

Params = Sequence[Any]


class Rows(Protocol):
    """The result of ``execute``: iterate it for rows, or take the first with ``fetchone``."""

    def __iter__(self) -> Iterator[Any]: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """The part of a DB-API connection stores use (apsw's names)."""

    def execute(self, statements: str, bindings: Params | None = None) -> Rows: ...

    def executemany(self, statements: str, sequenceofbindings: Iterable[Params]) -> Rows: ...

    def changes(self) -> int:
        """Rows changed by the last INSERT, UPDATE or DELETE."""
        ...


class ConstraintViolation(Exception):
    """A PostgreSQL integrity error (unique, foreign key, check) in the shape stores catch."""

    def __init__(self, message: str, *, foreign_key: bool) -> None:
        super().__init__(message)
        self.foreign_key = foreign_key


CONSTRAINT_ERRORS: tuple[type[Exception], ...] = (apsw.ConstraintError, ConstraintViolation)


def foreign_key_failed(exc: Exception) -> bool:
    """True when ``exc`` (one of ``CONSTRAINT_ERRORS``) is a foreign-key failure."""
    if isinstance(exc, ConstraintViolation):
        return exc.foreign_key
    return isinstance(exc, apsw.ConstraintError) and exc.extendedresult == apsw.SQLITE_CONSTRAINT_FOREIGNKEY
