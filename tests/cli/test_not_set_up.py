"""The packaged /etc/parlour/parlour.toml declares no host: "not set up yet", so `parlour run` starts the
wizard, `parlour check config` says what to do, and `parlour setup` fills the file in."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from appliance.catalog import load_config
from appliance.cli import _config
from appliance.cli.main import main
from appliance.cli.run import _setup_mode_wanted
from appliance.platform import paths
from tests.cli.test_cli import parlour

PACKAGED = Path(__file__).parents[2] / "packaging" / "parlour.toml"


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed layout in tmp_path (not a development run), with the packaged config file."""
    monkeypatch.delenv("PARLOUR_DEV", raising=False)
    monkeypatch.setattr("appliance.platform.paths.current_layout",
                        lambda dev=None: paths.Layout(tmp_path / "parlour.toml", tmp_path, dev=bool(dev)))
    config = tmp_path / "parlour.toml"
    config.write_bytes(PACKAGED.read_bytes())
    return config


def _wanted(config: Path) -> bool:
    return _setup_mode_wanted(argparse.Namespace(config=config, dev=False))


def test_the_packaged_file_starts_setup_mode(installed: Path) -> None:
    assert _config.not_set_up(installed)
    assert _wanted(installed)
    installed.write_text('[server]\nstate_dir = "/var/lib/parlour"\n\n[hosts]\n')  # an empty [hosts] table too
    assert _wanted(installed)
    installed.write_text('[hosts."example.org"]\n')
    assert not _wanted(installed)


def test_a_file_that_does_not_parse_is_an_error_not_setup_mode(installed: Path) -> None:
    installed.write_text("[server]\nstate_dir = /var/lib/parlour\n")
    assert not _wanted(installed)
    result = parlour("run", "--config", str(installed))
    assert result.returncode == 2
    assert f"{installed}:2:" in result.stderr


def test_check_config_says_not_set_up_yet() -> None:
    result = parlour("check", "config", "--config", str(PACKAGED))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"FAIL config {PACKAGED}: not set up yet: open the wizard (URL in `journalctl -u parlour`) "
        "or run `parlour setup`",
    ]


def test_setup_fills_in_the_packaged_file(installed: Path, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("a good password\n")
    argv = ["setup", "--config", str(installed), "--domain", "example.test", "--admin", "admin@example.test",
            "--password-file", str(secret), "--state-dir", str(tmp_path / "state")]
    assert main(argv) == 0
    assert load_config(installed).hosts[0].name == "example.test"
    assert installed.stat().st_mode & 0o777 == 0o640
    assert main(argv) == 1  # now set up: kept unless --force


def test_setup_mode_uses_the_state_dir_of_a_not_set_up_file(installed: Path, tmp_path: Path) -> None:
    assert _config.setup_state_dir(installed) == tmp_path  # only comments: the platform's folder
    installed.write_text('[server]\nstate_dir = "state"\n')
    assert _config.setup_state_dir(installed) == tmp_path / "state"


def test_a_named_file_starts_setup_mode_from_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """README: `parlour run --config DIR/parlour.toml` with a file that only names a state folder (or no
    file yet) opens the wizard, even where a bare `parlour run` is a development run."""
    monkeypatch.setenv("PARLOUR_DEV", "1")
    assert paths.current_layout().dev
    config = tmp_path / "parlour.toml"
    config.write_text('[server]\nstate_dir = "my-state"\n')
    assert _setup_mode_wanted(argparse.Namespace(config=config, dev=False))
    assert _config.setup_state_dir(config) == tmp_path / "my-state"
    assert _setup_mode_wanted(argparse.Namespace(config=tmp_path / "missing.toml", dev=False))
    assert not _setup_mode_wanted(argparse.Namespace(config=None, dev=False))  # built-in defaults
    assert not _setup_mode_wanted(argparse.Namespace(config=config, dev=True))
