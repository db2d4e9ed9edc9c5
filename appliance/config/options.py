"""Options declared beside the code that reads them: `option()` fields on a frozen dataclass.

A module (or a section of the core) writes one dataclass; each field says its default, its kind (which
values are allowed, in spec.py) and one line of documentation. `options_table` turns that dataclass into
the schema table that the loader validates against and `docs.py` renders:

    @dataclass(frozen=True, slots=True)
    class OfflineOptions:
        \"\"\"Offline message storage (XEP-0160).\"\"\"

        max_messages: int = option(1000, Int(0, 1_000_000), "Messages kept per account while it is offline.")
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from appliance.config import model
from appliance.config.spec import CORE_SECTIONS, HOST_LIMITS, MODULES_DISABLED, Key, Kind, Table

_KIND = "parlour.kind"
_DOC = "parlour.doc"
_DEFAULT_DOC = "parlour.default_doc"
_TABLE = "parlour.table"

__all__ = ["ModuleOptions", "Schema", "option", "options_table", "schema", "section"]


def option(default: Any, kind: Kind, doc: str, *, default_doc: str | None = None) -> Any:
    """A configuration key: its default, the kind of value allowed and what it does (one sentence)."""
    if isinstance(default, list | dict | set):
        raise TypeError("option defaults are immutable: use a tuple")
    return dataclasses.field(default=default, metadata={_KIND: kind, _DOC: doc, _DEFAULT_DOC: default_doc})


def section(cls: type) -> Any:
    """A nested table of options (another options dataclass), e.g. [modules.muc.default_room]."""
    return dataclasses.field(default_factory=cls, metadata={_TABLE: cls})


def options_table(path: str, cls: type) -> Table:
    """The schema table of an options dataclass; its docstring's first paragraph documents the table.

    Every field must be an `option()` or a `section()`: a key without a kind or a doc is a programming
    error, found when the schema is built (at import, in every test run), not by a user.
    """
    if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise TypeError(f"{cls.__name__}: options are a frozen dataclass")
    keys: list[Key] = []
    tables: list[Table] = []
    for f in dataclasses.fields(cls):
        if _TABLE in f.metadata:
            tables.append(options_table(f"{path}.{f.name}", f.metadata[_TABLE]))
        elif _KIND in f.metadata:
            keys.append(Key(f.name, f.metadata[_KIND], f.metadata[_DOC], f.default, f.metadata[_DEFAULT_DOC]))
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: declare it with option() or section()")
    doc = inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0].replace("\n", " ")
    if not doc or doc.startswith(f"{cls.__name__}("):  # dataclass() writes a signature when there is none
        raise TypeError(f"{cls.__name__}: the docstring documents the table [{path}]")
    return Table(path, cls, doc, tuple(keys), tuple(tables))


class ModuleOptions(Protocol):
    """What the schema needs of a module class: its name (the table [modules.<name>]) and options type."""

    name: ClassVar[str]
    options: ClassVar[type | None]


@dataclass(frozen=True, slots=True)
class Schema:
    """The whole configuration schema: the core's tables plus one table per module that has options."""

    sections: tuple[Table, ...]  # top-level tables in documentation order, [modules] last
    host: Table  # hosts.<name>, with its own [modules] table

    @property
    def modules(self) -> Table:
        return self.sections[-1]

    @property
    def top_level_names(self) -> tuple[str, ...]:
        return (*(t.name for t in self.sections), "hosts")

    def tables(self) -> list[Table]:
        """Every table under the top-level sections, depth first (hosts.<name> not included)."""
        return [table for top in self.sections for table in top.walk()]

    def table(self, path: str) -> Table | None:
        return next((t for t in self.tables() if t.path == path), None)


def schema(modules: Iterable[type[ModuleOptions]]) -> Schema:
    """The schema for a server made of `modules` (built once per set of modules)."""
    return _schema(tuple(modules))


@functools.cache
def _schema(modules: tuple[type[ModuleOptions], ...]) -> Schema:
    seen: dict[type, str] = {}
    for module in modules:
        if module.options is not None:
            if module.options in seen:
                raise TypeError(f"modules {seen[module.options]} and {module.name} share {module.options.__name__}")
            seen[module.options] = module.name

    def modules_table(prefix: str, doc: str) -> Table:
        tables = tuple(options_table(f"{prefix}.{name}", cls) for cls, name in seen.items())
        return Table(prefix, model.ModulesConfig, doc, (MODULES_DISABLED,), tables)

    host = Table("hosts.<name>", model.HostConfig, 'One table per virtual host, named by its domain: '
                 '`[hosts."example.org"]`. At least one is required.', (), (
        HOST_LIMITS,
        modules_table("hosts.<name>.modules", "Per-host module options, merged key by key over "
                      "[modules]; a host's `disabled` replaces the global list."),
    ))
    return Schema((*CORE_SECTIONS, modules_table("modules", "Module options: defaults for every host.")), host)
