"""Print the layer-to-layer import graph of the `appliance` package, read with `ast` (nothing is imported).

A layer is a top-level folder of appliance/ (core, web, certs, ...), or a top-level file (app). For
every edge it prints how many imports carry it and how many of those sit inside a function (lazy
imports, which hide a dependency from load time); then the cycles between layers, counted twice: over
every import, and over top-level imports only (those that run when a module is loaded).

    python tools/import_graph.py [PACKAGE_DIR]     # default: ./appliance
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Import:
    """One `import appliance.x` / `from appliance.x import y` found in a file."""

    source: str  # the importing layer
    target: str  # the imported layer
    lazy: bool  # inside a function (runs on call, not on load)
    type_only: bool  # under `if TYPE_CHECKING:`


def layer_of(module: str) -> str:
    """`appliance.web.admin.service` -> `web`; `appliance.app` -> `app`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "appliance"


def _walk(node: ast.AST, in_function: bool, type_only: bool) -> list[tuple[ast.AST, bool, bool]]:
    out = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            out.append((child, in_function, type_only))
        guarded = type_only or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
        nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        out += _walk(child, nested, guarded)
    return out


def imports_of(path: Path, package: Path) -> list[Import]:
    """The appliance imports of one file, relative ones resolved."""
    relative = path.relative_to(package.parent).with_suffix("")
    own = ".".join(relative.parts if relative.name != "__init__" else relative.parts[:-1])
    package_of_file = own if path.name == "__init__.py" else own.rpartition(".")[0]
    source = layer_of(own)
    found = []
    for node, lazy, type_only in _walk(ast.parse(path.read_text(encoding="utf-8")), False, False):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package_of_file.split(".")[: len(package_of_file.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from appliance import web` names the layer in the alias
            names = [f"{base}.{a.name}" for a in node.names] if base == "appliance" else [base]
        for name in names:
            if name.startswith("appliance.") and layer_of(name) not in ("__version__",):
                found.append(Import(source, layer_of(name), lazy, type_only))
    return found


def collect(package: Path) -> list[Import]:
    return [imp for path in sorted(package.rglob("*.py")) for imp in imports_of(path, package)]


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


def report(found: list[Import]) -> str:
    edges: dict[tuple[str, str], list[Import]] = defaultdict(list)
    for imp in found:
        if imp.source != imp.target:
            edges[(imp.source, imp.target)].append(imp)
    lines = ["layer -> layer            imports  in functions  type-only"]
    for (a, b), imps in sorted(edges.items()):
        lazy = sum(i.lazy for i in imps)
        typed = sum(i.type_only for i in imps)
        lines.append(f"{a:>10} -> {b:<12} {len(imps):7d}  {lazy:12d}  {typed:9d}")
    every = set(edges)
    load_time = {e for e, imps in edges.items() if any(not i.lazy and not i.type_only for i in imps)}
    lines.append("")
    lines.append(f"cycles between layers, all imports: {_cycles_text(cycles(every))}")
    lines.append(f"cycles between layers, at load time (top-level imports): {_cycles_text(cycles(load_time))}")
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
