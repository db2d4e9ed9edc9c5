"""The dependency rule of DESIGN.md, checked on every import in the package (lazy ones included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "appliance"

# layer -> the appliance layers it may import (itself always allowed). None: sits on top, anything goes.
ALLOWED: dict[str, set[str] | None] = {
    "xmpp": set(),
    "util": set(),
    "storage": {"util", "xmpp.jid"},
    "config": {"util", "xmpp", "platform"},
    "platform": {"util"},
    "core": {"xmpp", "storage.api", "config", "util"},
    "modules": {"core.api", "core.events", "xmpp", "storage.api", "util"},
    "net": {"xmpp", "util", "config", "core.c2s"},
    "web": None,
    "certs": None,
    "cli": None,
}
COMPOSITION_ROOTS = {"app"}  # the package that builds the concrete stores, certificates and listeners


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names]
    return [name.removeprefix("appliance.") for name in found if name.startswith("appliance.")]


def _permitted(target: str, allowed: set[str], own: str) -> bool:
    if target == own or target.startswith(own + "."):
        return True
    return any(target == a or target.startswith(a + ".") for a in allowed)


def _files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE)


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layer_imports(path: Path) -> None:
    relative = path.relative_to(PACKAGE).as_posix()
    layer = relative.split("/")[0]
    allowed = ALLOWED.get(layer)
    if allowed is None or relative in COMPOSITION_ROOTS:
        return
    wrong = []
    for target in _imports(path):
        # "from appliance.core import events" names the module appliance.core.events
        if target in ("core", "xmpp", "storage", "config", "util", "modules", "net", "__version__"):
            continue
        if not _permitted(target, allowed, layer):
            wrong.append(target)
    assert not wrong, f"{relative} ({layer}) may not import {sorted(set(wrong))}"
