"""xmpp/ is sans-IO (STYLE.md rule 7): no event loop, sockets, threads, storage or clock in any of its
modules, lazy imports included. The stream machine is fed time and data by its driver."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

XMPP = Path(__file__).resolve().parents[2] / "appliance" / "xmpp"
FORBIDDEN = frozenset({
    "asyncio", "socket", "ssl", "selectors", "threading", "concurrent", "subprocess", "os", "time",
    "datetime", "sqlite3", "apsw", "aiohttp", "uvloop",
})


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(XMPP.rglob("*.py")), ids=lambda p: str(p.relative_to(XMPP)))
def test_xmpp_modules_do_no_io_and_read_no_clock(path: Path) -> None:
    assert not _imported(path) & FORBIDDEN


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def later():\n    import asyncio.tasks\n    from time import monotonic\n")
    assert _imported(sample) & FORBIDDEN == {"asyncio", "time"}
