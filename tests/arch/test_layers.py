"""The dependency rule of DESIGN.md, checked on every import in the package (lazy ones included): each layer
has its list of what it may import, with no exemptions; appliance/app is the one composition root; and no
two layers import each other when modules load.

Imports are read with tools/import_graph.py (ast, nothing imported), the script that prints the graph.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "appliance"


def _import_graph() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


graph = _import_graph()

BASE = {"util", "xmpp", "config", "platform"}  # the floor that the upper layers share
# layer -> the appliance modules it may import (a name allows the module and everything under it; its own
# layer is always allowed). Every folder and top-level file of appliance/ is listed: a new one fails below.
ALLOWED: dict[str, set[str]] = {
    "xmpp": set(),
    "util": set(),
    "platform": {"util"},
    "storage": {"util", "xmpp.jid"},
    "config": {"util", "xmpp", "platform"},
    "core": {"xmpp", "storage.api", "config", "util"},
    "modules": {"core.api", "core.events", "xmpp", "storage.api", "util"},
    # beside core: the c2s driver is handed to the TCP shell; core never imports net or certs
    "net": {"xmpp", "util", "config", "core.c2s"},
    "certs": {"config", "util", "net.tls", "net.openssl_tls"},
    # the STUN/TURN server for calls: a network service of its own beside the XMPP core
    "turn": {"util"},
    # the company directory (LDAP): an IO client beside core, handed to it by app/ (core sees a Protocol)
    "directory": {"config", "util"},
    # what the build is made of (modules, stores): opens the database for app/ and the CLI
    "catalog": {"config", "core.api", "core.stores", "modules", "platform", "storage", "util"},
    # the cluster (Redis registry and queues) drives the core's directory and router; app/ builds it
    "cluster": BASE | {"core", "storage.api"},
    "services": BASE | {"core", "storage.api", "storage.tokens", "storage.backup", "certs", "catalog", "directory"},
    # BOSH and WebSocket are c2s transports; the console and the API call services only
    "web": BASE | {"services", "core.c2s", "net", "certs.acme", "storage.api", "storage.uploads"},
    "cli": BASE | {"app", "services", "certs", "catalog"},
    # the composition root: builds and wires every layer
    "app": BASE | {"catalog", "cluster", "core", "modules", "storage", "net", "certs", "services", "web", "turn",
            "directory"},
    "__main__": {"cli"},
    "compliance": {"catalog", "core.api", "modules"},
}
ROOT_NAMES = {"appliance", "__init__"}  # appliance/__init__.py holds only __version__
COMPOSITION_ROOT = "app"
BUILD_LIST = "catalog"  # names the modules and stores of this build and opens the database for app/ and cli
ENTRY_POINTS = {"cli"}  # `parlour run` starts the composition root


def _files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _layer(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _permitted(module: str, allowed: set[str], own: str) -> bool:
    if module in graph.ROOT_CONSTANTS:
        return True
    return any(module == a or module.startswith(a + ".") for a in allowed | {own})


def test_every_layer_has_a_list() -> None:
    layers = {_layer(p) for p in _files()} - ROOT_NAMES
    assert layers == set(ALLOWED), "give each layer of appliance/ an allowed-import list"


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layer_imports(path: Path) -> None:
    layer = _layer(path)
    allowed = ALLOWED.get(layer, set())
    wrong = {i.module for i in graph.imports_of(path, PACKAGE) if not _permitted(i.module, allowed, layer)}
    assert not wrong, f"{path.relative_to(PACKAGE)} ({layer}) may not import {sorted(wrong)}"


def test_no_layer_imports_another_that_imports_it_back_at_load_time() -> None:
    cycles = graph.cycles(graph.layer_edges(graph.collect(PACKAGE), load_time_only=True))
    assert cycles == [], f"import circles between layers when modules load: {cycles}"


def test_the_allowed_lists_themselves_admit_no_circle() -> None:
    edges = {(layer, name.split(".")[0]) for layer, names in ALLOWED.items() for name in names if name != layer}
    assert graph.cycles(edges) == []


def test_only_the_entry_point_imports_the_composition_root() -> None:
    importers = {i.source for i in graph.collect(PACKAGE) if i.target == COMPOSITION_ROOT}
    assert importers - {COMPOSITION_ROOT} <= ENTRY_POINTS


def test_only_the_composition_root_opens_the_database() -> None:
    """`Database.open` and the concrete stores appear in app/, the build list and storage/ itself only."""
    opened = []
    for path in _files():
        layer = _layer(path)
        if layer in (COMPOSITION_ROOT, BUILD_LIST, "storage"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and node.attr == "open" and isinstance(node.value, ast.Name)
                    and node.value.id == "Database"):
                opened.append(str(path.relative_to(PACKAGE)))
        concrete = [i.module for i in graph.imports_of(path, PACKAGE)
                    if i.module.startswith(("storage.sqlite", "storage.postgres", "storage.connect", "storage.stores"))]
        opened += [f"{path.relative_to(PACKAGE)} imports {m}" for m in concrete]
    assert opened == []


def test_the_graph_reader_resolves_relative_and_from_imports(tmp_path: Path) -> None:
    """The reader the rules rely on: `from appliance.core import events` names core.events, a relative
    import resolves, a lazy or TYPE_CHECKING import is marked as such."""
    package = tmp_path / "appliance"
    (package / "core").mkdir(parents=True)
    (package / "web").mkdir()
    for name in ("__init__.py", "core/__init__.py", "core/events.py", "web/__init__.py", "web/b.py"):
        (package / name).write_text("")
    (package / "web" / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from appliance.core import events\n"
        "from . import b\n"
        "if TYPE_CHECKING:\n    from appliance.core.events import Hook\n"
        "def f():\n    import appliance.core\n"
    )
    found = graph.imports_of(package / "web" / "a.py", package)
    assert [(i.module, i.lazy, i.type_only) for i in found] == [
        ("core.events", False, False), ("web.b", False, False), ("core.events", False, True), ("core", True, False),
    ]
    assert graph.cycles({("web", "core"), ("core", "web"), ("core", "xmpp")}) == [["core", "web"]]
