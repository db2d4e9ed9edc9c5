"""The generated compliance table lists every XEP the modules declare; the DOAP file is valid XML."""

from __future__ import annotations

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


def test_rfc_6120_is_not_complete_without_server_to_server() -> None:
    """Federation (RFC 6120 §13) is missing: the table says so instead of claiming the core complete."""
    (row,) = [line for line in compliance.markdown().splitlines() if line.startswith("| RFC 6120 |")]
    assert "| partial |" in row and "server-to-server" in row
