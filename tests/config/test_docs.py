"""The generated configuration reference: complete, current, and its example loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from appliance.catalog import builtin_schema, parse_config
from appliance.config import docs
from appliance.modules.register import RegisterOptions

ROOT = Path(__file__).parents[2]


def test_committed_reference_is_current() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == docs.render(builtin_schema()), (
        "docs/configuration.md is stale: run `make docs` (python -m appliance.catalog > docs/configuration.md)"
    )


def test_every_key_is_documented() -> None:
    schema = builtin_schema()
    text = docs.render(schema)
    assert "[modules.offline]" in text and "[modules.muc.default_room]" in text
    for table in schema.tables():
        assert f"[{table.path}]" in text
        for key in table.keys:
            assert f"| `{key.name}` |" in text, f"{table.path}.{key.name}"


def test_example_in_the_reference_loads() -> None:
    config = parse_config(docs.example_file(builtin_schema()), "example.toml", base_dir=ROOT)
    assert config.hosts[0].name == "example.org"
    assert config.hosts[0].modules.of(RegisterOptions).policy == "open"


def test_module_entry_point_prints_the_reference() -> None:
    out = subprocess.run([sys.executable, "-m", "appliance.catalog"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out == docs.render(builtin_schema())
