"""In-process tests of CLI helpers: password prompts, config selection and logging setup."""

from __future__ import annotations

import argparse
import io
import logging
from pathlib import Path

import pytest

from appliance.cli import _config, user
from appliance.config import ConfigError
from appliance.config.model import LoggingConfig
from appliance.util.logging import STANZA_LOGGER, setup_logging


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_password_prompt_on_a_terminal_asks_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["pw one", "pw one", "first", "second"])
    monkeypatch.setattr("sys.stdin", FakeTty())
    monkeypatch.setattr(user.getpass, "getpass", lambda prompt: next(answers))
    assert user.read_password() == "pw one"
    with pytest.raises(user.UserCommandError, match="differ"):
        user.read_password()


def test_password_from_a_pipe_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(" spaced pw \nsecond line\n"))
    assert user.read_password() == " spaced pw "


def test_config_selection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PARLOUR_DEV", raising=False)
    dev = _config.load(argparse.Namespace(config=None, dev=True))
    assert dev.source is None and dev.server.state_dir == tmp_path / "dev-state"
    (tmp_path / "dev-state").mkdir()
    (tmp_path / "dev-state" / "parlour.toml").write_text('[hosts."dev.example"]\n')
    from_file = _config.load(argparse.Namespace(config=None, dev=True))
    assert from_file.hosts[0].name == "dev.example"
    assert from_file.server.state_dir == tmp_path / "dev-state"
    with pytest.raises(ConfigError, match="no such file"):
        _config.load(argparse.Namespace(config=tmp_path / "missing.toml", dev=False))


def test_setup_logging_levels() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging(LoggingConfig(level="warning"))
        assert root.level == logging.WARNING
        assert len(root.handlers) == 1
        assert not logging.getLogger(STANZA_LOGGER).isEnabledFor(logging.DEBUG)
        setup_logging(LoggingConfig(level="info", stanzas=True))
        assert root.level == logging.INFO and len(root.handlers) == 1
        assert logging.getLogger(STANZA_LOGGER).isEnabledFor(logging.DEBUG)
        assert not logging.getLogger("appliance.core").isEnabledFor(logging.DEBUG)
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        logging.getLogger(STANZA_LOGGER).setLevel(logging.NOTSET)
