"""The generated configuration reference: complete, current, and its example loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from appliance.config import docs, parse_config, spec

ROOT = Path(__file__).parents[2]


def test_committed_reference_is_current() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == docs.render(), (
        "docs/configuration.md is stale: run `python -m appliance.config.docs > docs/configuration.md`"
    )


def test_every_key_is_documented() -> None:
    text = docs.render()
    for top in spec.SECTIONS:
        for table in top.walk():
            assert f"[{table.path}]" in text
            for key in table.keys:
                assert f"| `{key.name}` |" in text, f"{table.path}.{key.name}"


def test_example_in_the_reference_loads() -> None:
    config = parse_config(docs.example_file(), "example.toml", base_dir=ROOT)
    assert config.hosts[0].name == "example.org"
    assert config.hosts[0].modules.register.policy == "open"


def test_module_entry_point_prints_the_reference() -> None:
    out = subprocess.run([sys.executable, "-m", "appliance.config.docs"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out == docs.render()
