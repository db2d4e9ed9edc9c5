"""The generated compliance table lists every XEP the modules declare; the DOAP file is valid XML."""

from __future__ import annotations

import re
from pathlib import Path

from lxml import etree

from appliance import compliance
from appliance.catalog import BUILTIN


def test_every_declared_xep_is_listed() -> None:
    table = compliance.markdown()
    declared = [(x, m.name) for m in BUILTIN for x in m.implements] + list(compliance.CORE_XEPS)
    assert declared, "modules declare the XEPs they implement"
    for xep, module in declared:
        assert f"| XEP-{xep.number:04d} | {xep.version} | {xep.status} | {module} |" in table


def test_doap_is_well_formed_and_complete() -> None:
    root = etree.fromstring(compliance.doap().encode())
    ns = {"xmpp": "https://linkmauve.fr/ns/xmpp-doap#", "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#"}
    listed = {
        el.get(f"{{{ns['rdf']}}}resource").rsplit("-", 1)[1].removesuffix(".html")
        for el in root.iterfind(".//xmpp:xep", ns)
    }
    expected = {f"{x.number:04d}" for m in BUILTIN for x in m.implements}
    assert listed == expected | {f"{x.number:04d}" for x, _ in compliance.CORE_XEPS}


def test_the_published_files_are_the_generated_ones() -> None:
    docs = Path(__file__).parents[2] / "docs"
    assert (docs / "compliance.md").read_text() == compliance.markdown(), "run `make docs`"
    assert (docs / "parlour.doap").read_text() == compliance.doap(), "run `make docs`"


ROOT = Path(__file__).parents[2]
AUDIT = ROOT / "docs" / "compliance-rfc6120-s2s.md"
DONE = {"met", "n/a", "see XEP-0220", "not met, by choice"}  # the one choice: §13.8's suite, under RFC 7590


def audit_rows() -> list[list[str]]:
    """The requirement rows of the RFC 6120 server-to-server audit: [section, requirement, status, shown by]."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in AUDIT.read_text().splitlines() if line.startswith("| ")]
    return [row for row in rows if row[0] != "§"]


def test_rfc_6120_is_complete_only_when_every_server_to_server_row_is_met() -> None:
    """The table may call RFC 6120 complete only while the audit has no row untested or not met, and each
    met row names a test that exists."""
    rows = audit_rows()
    assert len(rows) > 40 and all(len(row) == 4 for row in rows)
    open_rows = [row[0] for row in rows if row[2] not in DONE]
    (line,) = [line for line in compliance.markdown().splitlines() if line.startswith("| RFC 6120 |")]
    assert ("| complete |" in line) == (not open_rows), open_rows
    assert [row[0] for row in rows if row[2] == "not met, by choice"] == ["13.8"]
    sources = {path.stem: path.read_text() for path in (ROOT / "tests").rglob("test_*.py")}
    for section, _, status, shown in rows:
        if status != "met":
            continue
        cited = re.findall(r"(test_\w+)::(test_\w+)", shown)
        assert "test_" in shown, f"§{section} is met but names no test"
        for module, name in cited:
            assert f"def {name}(" in sources[module], f"§{section} cites {module}::{name}, which does not exist"
