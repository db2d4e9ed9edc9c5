"""The configuration reference in Markdown, generated from the schema (the core's keys and every
module's options).

`python -m appliance.catalog > docs/configuration.md` (`make docs`); a test fails when that file is stale.
"""

from __future__ import annotations

from appliance.config import spec
from appliance.config.options import Schema

HEADER = """\
# Configuration reference

<!-- Generated from appliance/config/spec.py and the modules' options by `make docs`; do not edit. -->

Parlour reads one TOML file: `/etc/parlour/parlour.toml` on Linux, `%ProgramData%\\Parlour\\parlour.toml`
on Windows, `/Library/Application Support/Parlour/parlour.toml` on macOS, `./dev-state/parlour.toml` in a
development run, or the file given with `--config`. Run `parlour check config` after every change: it
lists every problem at once, each with its file, line, key, value and what is allowed. A server refuses
to start with an invalid file, and keeps its old configuration when a reload finds one.

Every key is optional except that at least one `[hosts."…"]` table must exist.

## Value types

- **duration**: seconds as a number (`30`, `0.5`) or a string with a unit: `"500ms"`, `"30s"`,
  `"10m"`, `"2h"`, `"1d"`, `"1w"`.
- **size**: bytes as an integer (`65536`) or a string with a unit: `"64KiB"`, `"10MiB"`, `"1GiB"`
  (binary) or `"64kB"`, `"10MB"` (decimal).
- **path**: absolute, or relative to the folder of the config file; `~` is expanded.
- **list of strings**: `["a", "b"]`, without duplicates.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _key_rows(table: spec.Table) -> list[str]:
    rows = ["| Key | Type | Default | Allowed | Description |", "|---|---|---|---|---|"]
    for key in table.keys:
        default = key.default_toml() if key.default_doc else f"`{key.default_toml()}`"
        rows.append(
            f"| `{key.name}` | {key.kind.type_name} | {_cell(default)} | {_cell(key.kind.brief())} "
            f"| {_cell(key.doc)} |"
        )
    return rows


def _section(table: spec.Table, level: int = 2) -> list[str]:
    out = [f"{'#' * level} [{table.path}]", "", table.doc, ""]
    if table.keys:
        out += [*_key_rows(table), ""]
    for sub in table.tables:
        out += _section(sub, level + 1)
    return out


def example_file(schema: Schema) -> str:
    """A complete config file: every key at its default, and one host."""
    lines = ["# Every key at its default value; delete what you do not change.", ""]
    for table in schema.tables():
        if not table.keys:
            continue
        lines.append(f"[{table.path}]")
        for key in table.keys:
            if key.default_doc is not None:
                lines.append(f"# {key.name} = ...  # {key.default_doc}")
            else:
                lines.append(f"{key.name} = {key.default_toml()}")
        lines.append("")
    lines += [
        '[hosts."example.org"]',
        "",
        "# Per-host override of one module option:",
        '[hosts."example.org".modules.register]',
        'policy = "open"',
    ]
    return "\n".join(lines) + "\n"


def render(schema: Schema) -> str:
    """The whole reference page."""
    out = [HEADER]
    for table in schema.sections:
        out += _section(table)
    host_modules = schema.host.table("modules")
    assert host_modules is not None
    out += [
        '## [hosts."example.org"]',
        "",
        schema.host.doc,
        "The name is a domain name; it is stored in lower case.",
        "",
        '### [hosts."example.org".modules]',
        "",
        host_modules.doc + " Every key of `[modules]` and its tables can be set here, e.g.:",
        "",
        "```toml",
        "[modules.offline]",
        "max_messages = 1000          # every host",
        "",
        '[hosts."example.org".modules.offline]',
        "max_messages = 100           # only example.org",
        "```",
        "",
        "## A complete file",
        "",
        "```toml",
        example_file(schema).rstrip("\n"),
        "```",
    ]
    return "\n".join(out) + "\n"
