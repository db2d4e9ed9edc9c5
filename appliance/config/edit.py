"""Changing single keys of parlour.toml in place, keeping the rest of the file (comments included)."""

from __future__ import annotations

import re

from appliance.config.spec import toml_key

_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")


def set_key(text: str, table: str, key: str, literal: str) -> str:
    """Set `key = literal` in `[table]` (a plain dotted table name); add the key or the table if missing."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if (m := _HEADER.match(line)) and m[1] == table), None)
    assignment = f"{toml_key(key)} = {literal}"
    if start is None:
        while lines and not lines[-1].strip():
            lines.pop()
        lines += ["", f"[{table}]", assignment]
        return "\n".join(lines) + "\n"
    end = next((i for i in range(start + 1, len(lines)) if _HEADER.match(lines[i])), len(lines))
    pattern = re.compile(rf"^\s*{re.escape(toml_key(key))}\s*=")
    for i in range(start + 1, end):
        if pattern.match(lines[i]):
            lines[i] = assignment
            return "\n".join(lines) + "\n"
    last = start
    for i in range(start + 1, end):
        if lines[i].strip() and not lines[i].lstrip().startswith("#"):
            last = i
    lines.insert(last + 1, assignment)
    return "\n".join(lines) + "\n"


__all__ = ["set_key"]
