"""Print the layer-to-layer import graph of the `appliance` package, read with `ast` (nothing is imported).

A layer is a top-level folder of appliance/ (core, web, certs, ...), or a top-level file (compliance,
__main__). For every edge it prints how many import statements carry it and how many of those sit
inside a function (lazy imports, which hide a dependency from load time) or under `if TYPE_CHECKING:`;
then the cycles between layers, counted twice: over every import, and over the imports that run when a
module is loaded (top level, not type-only). tests/arch/test_layers.py reads the imports the same way.

    python tools/import_graph.py [PACKAGE_DIR]     # default: ./appliance
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT_CONSTANTS = ("__version__",)  # names of the package itself (appliance/__init__.py), not a layer


@dataclass(frozen=True, slots=True)
class Import:
    """One appliance import found in a file (`import appliance.x`, `from appliance.x import y`)."""

    file: str  # the importing file, relative to the package: "web/app.py"
    module: str  # the imported module without "appliance.": "core.c2s", "__version__"
    lazy: bool  # inside a function (runs on call, not on load)
    type_only: bool  # under `if TYPE_CHECKING:`

    @property
    def source(self) -> str:
        """The importing layer: "web/app.py" -> "web", "compliance.py" -> "compliance"."""
        first = self.file.split("/")[0]
        return first.removesuffix(".py")

    @property
    def target(self) -> str:
        return self.module.split(".")[0]

    @property
    def load_time(self) -> bool:
        return not self.lazy and not self.type_only


def _walk(node: ast.AST, in_function: bool, type_only: bool) -> list[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
    out: list[tuple[ast.Import | ast.ImportFrom, bool, bool]] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            out.append((child, in_function, type_only))
        guarded = type_only or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
        nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        out += _walk(child, nested, guarded)
    return out


def _is_module(package: Path, dotted: str) -> bool:
    path = package.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports_of(path: Path, package: Path) -> list[Import]:
    """The appliance imports of one file, relative ones resolved; `from a.b import c` names the module
    a.b.c when c is a module, else a.b."""
    relative = path.relative_to(package)
    own = ".".join(relative.with_suffix("").parts)
    anchor_parts = own.split(".")[:-1]  # the package a relative import starts from (also for __init__)
    found = []
    for node, lazy, type_only in _walk(ast.parse(path.read_text(encoding="utf-8")), False, False):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name.removeprefix("appliance.") for a in node.names if a.name.startswith("appliance.")]
        else:
            if node.level:
                kept = anchor_parts[: len(anchor_parts) - node.level + 1]
                base = ".".join(["appliance", *kept, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            if base != "appliance" and not base.startswith("appliance."):
                continue
            inner = base.removeprefix("appliance").removeprefix(".")
            for alias in node.names:
                dotted = f"{inner}.{alias.name}" if inner else alias.name
                modules.append(dotted if _is_module(package, dotted) or not inner else inner)
        found += [Import(relative.as_posix(), m, lazy, type_only) for m in dict.fromkeys(modules)]
    return found


def collect(package: Path) -> list[Import]:
    return [imp for path in sorted(package.rglob("*.py")) for imp in imports_of(path, package)]


def layer_edges(found: list[Import], *, load_time_only: bool = False) -> set[tuple[str, str]]:
    """(importing layer, imported layer) pairs, the package's own constants left out."""
    return {(i.source, i.target) for i in found
            if i.source != i.target and i.module not in ROOT_CONSTANTS and (i.load_time or not load_time_only)}


def cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected groups of more than one layer (Tarjan), each sorted."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups)


def module_edges(found: list[Import]) -> set[tuple[str, str]]:
    """(importing module, imported module) pairs, a package import counted as its __init__."""
    return {(i.file.removesuffix(".py").removesuffix("/__init__").replace("/", "."), i.module) for i in found
            if i.module not in ROOT_CONSTANTS}


def report(found: list[Import]) -> str:
    edges: dict[tuple[str, str], list[Import]] = defaultdict(list)
    for imp in found:
        if imp.source != imp.target and imp.module not in ROOT_CONSTANTS:
            edges[(imp.source, imp.target)].append(imp)
    lines = ["layer -> layer            imports  in functions  type-only"]
    for (a, b), imps in sorted(edges.items()):
        lazy = sum(i.lazy for i in imps)
        typed = sum(i.type_only for i in imps)
        lines.append(f"{a:>10} -> {b:<12} {len(imps):7d}  {lazy:12d}  {typed:9d}")
    lines.append("")
    lines.append(f"cycles between layers, all imports: {_cycles_text(cycles(layer_edges(found)))}")
    load_time = cycles(layer_edges(found, load_time_only=True))
    lines.append(f"cycles between layers, at load time (top-level imports): {_cycles_text(load_time)}")
    circles = cycles(module_edges(found))
    biggest = max(circles, key=len, default=[])
    lines.append(f"module-level import circles, all imports: {len(circles)}; the largest spans {len(biggest)} "
                 f"modules in {len({m.split('.')[0] for m in biggest})} layers")
    lazy_by_layer: dict[str, int] = defaultdict(int)
    for imp in found:
        if imp.lazy:
            lazy_by_layer[imp.source] += 1
    lines.append("")
    total = sum(lazy_by_layer.values())
    per_layer = ", ".join(f"{k} {v}" for k, v in sorted(lazy_by_layer.items()))
    lines.append(f"function-local appliance imports: {total} ({per_layer})")
    return "\n".join(lines)


def _cycles_text(groups: list[list[str]]) -> str:
    return "; ".join(" <-> ".join(g) for g in groups) if groups else "none"


def main(argv: list[str]) -> int:
    package = Path(argv[1]) if len(argv) > 1 else Path("appliance")
    if not (package / "__init__.py").exists():
        print(f"{package} is not the appliance package", file=sys.stderr)
        return 2
    print(report(collect(package.resolve())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
