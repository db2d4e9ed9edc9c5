"""What this build of Parlour is made of: the built-in modules, and the configuration schema they make.

The configuration loader (config/) sits below the modules and cannot know them; callers above both
(the CLI, the web console and wizard, the composition root) load configuration through here.
`python -m appliance.catalog > docs/configuration.md` (`make docs`) prints the configuration reference.
"""

from __future__ import annotations

import sys
from pathlib import Path

from appliance.config import Config, docs
from appliance.config import default_config as _default_config
from appliance.config import load_config as _load_config
from appliance.config import parse_config as _parse_config
from appliance.config.options import Schema, schema
from appliance.modules import BUILTIN

__all__ = ["BUILTIN", "builtin_schema", "default_config", "load_config", "parse_config"]


def builtin_schema() -> Schema:
    """The configuration schema of a server made of the built-in modules."""
    return schema(BUILTIN)


def default_config(state_dir: Path) -> Config:
    """`config.default_config` (host "localhost" on loopback) with every built-in module at its defaults."""
    return _default_config(state_dir, modules=BUILTIN)


def load_config(path: Path, *, default_state_dir: Path | None = None) -> Config:
    """`config.load_config` for the built-in modules."""
    return _load_config(path, modules=BUILTIN, default_state_dir=default_state_dir)


def parse_config(text: str, source: str, *, base_dir: Path | None = None,
                 default_state_dir: Path | None = None) -> Config:
    """`config.parse_config` for the built-in modules."""
    return _parse_config(text, source, modules=BUILTIN, base_dir=base_dir, default_state_dir=default_state_dir)


def main() -> int:
    sys.stdout.write(docs.render(builtin_schema()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
