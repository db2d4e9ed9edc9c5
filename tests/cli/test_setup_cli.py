"""`parlour setup` writes the same configuration the wizard does, and creates the administrator."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest

from appliance.catalog import load_config
from appliance.cli.main import main
from appliance.cli.run import _setup_mode_wanted
from appliance.core.accounts import AccountService
from appliance.modules.register import RegisterOptions
from appliance.platform import paths
from appliance.storage.sqlite import Database
from appliance.storage.stores.accounts import AccountStore
from appliance.xmpp.jid import JID


async def _verify(state: Path, jid: str, password: str) -> bool:
    db = await Database.open(state / "parlour.db")
    try:
        return await AccountService(AccountStore(db), iterations=4096).verify_plain(JID.parse(jid), password)
    finally:
        await db.close()


def test_setup_without_a_browser(tmp_path: Path) -> None:
    config, state, secret = tmp_path / "parlour.toml", tmp_path / "state", tmp_path / "pw"
    secret.write_text("a good password\n")
    argv = ["setup", "--config", str(config), "--domain", "chat.example.org", "--admin", "root",
            "--password-file", str(secret), "--registration", "open", "--state-dir", str(state)]
    assert main(argv) == 0
    loaded = load_config(config)
    assert loaded.server.admins == ("root@chat.example.org",)
    assert loaded.hosts[0].name == "chat.example.org"
    assert loaded.hosts[0].modules.of(RegisterOptions).policy == "open"
    assert asyncio.run(_verify(state, "root@chat.example.org", "a good password"))
    assert main(argv) == 1  # setup is done; the file is kept
    assert main([*argv[:-2], "--state-dir", str(state), "--domain", "bad domain!"]) != 0


def test_a_short_password_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("short")
    code = main(["setup", "--config", str(tmp_path / "parlour.toml"), "--domain", "localhost", "--admin", "root",
                 "--password-file", str(secret), "--state-dir", str(tmp_path / "state")])
    assert code == 1 and not (tmp_path / "parlour.toml").exists()


def test_run_without_a_config_file_enters_setup_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARLOUR_DEV", raising=False)
    monkeypatch.setattr("appliance.platform.paths.current_layout",
                        lambda dev=None: paths.Layout(tmp_path / "parlour.toml", tmp_path, dev=bool(dev)))
    config = tmp_path / "parlour.toml"
    assert _setup_mode_wanted(argparse.Namespace(config=config, dev=False)) is True
    assert _setup_mode_wanted(argparse.Namespace(config=config, dev=True)) is False  # --dev has defaults
    config.write_text('[hosts."example.org"]\n')
    assert _setup_mode_wanted(argparse.Namespace(config=config, dev=False)) is False
