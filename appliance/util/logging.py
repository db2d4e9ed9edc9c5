"""Logging setup for the whole process: one concise format, the level from the config."""

from __future__ import annotations

import logging
import os
import sys
from typing import Protocol

STANZA_LOGGER = "appliance.stanzas"
"""Stanza traces go to this logger at DEBUG; it is silent unless `logging.stanzas` is true."""

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class LoggingSettings(Protocol):
    """What setup_logging reads; `appliance.config.model.LoggingConfig` fits (util imports no config)."""

    @property
    def level(self) -> str: ...

    @property
    def stanzas(self) -> bool: ...


def setup_logging(cfg: LoggingSettings) -> None:
    """Send log records to stderr; under systemd the journal adds its own timestamps, so we do not."""
    under_journal = bool(os.environ.get("JOURNAL_STREAM")) and not sys.stderr.isatty()
    fmt = "%(levelname)s %(name)s: %(message)s" if under_journal else (
        "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt, datefmt="%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_LEVELS.get(cfg.level, logging.INFO))
    # Tracing is opt-in even at level "debug": stanzas carry private messages. A record passes the
    # stanza logger's own level and then the root's handler, whatever the root's level is.
    logging.getLogger(STANZA_LOGGER).setLevel(logging.DEBUG if cfg.stanzas else logging.WARNING)


def apply_level(cfg: LoggingSettings) -> None:
    """Change the levels of a running process (config reload) without touching its handlers."""
    logging.getLogger().setLevel(_LEVELS.get(cfg.level, logging.INFO))
    logging.getLogger(STANZA_LOGGER).setLevel(logging.DEBUG if cfg.stanzas else logging.WARNING)
