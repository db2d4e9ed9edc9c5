"""`parlour room`: create, list, change owners and destroy rooms in the database of a stopped server."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cli.main import main


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "parlour.toml"
    path.write_text(f'[server]\nstate_dir = "{tmp_path / "state"}"\n[hosts."example.org"]\n')
    return path


def test_room_lifecycle(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = ["-c", str(config_file), "example.org"]
    assert main(["room", "create", *cfg, "lobby", "alice@example.org", "--title", "Lobby"]) == 0
    assert main(["room", "list", *cfg]) == 0
    assert "lobby@conference.example.org\tLobby\tpublic\towners: alice@example.org" in capsys.readouterr().out
    assert main(["room", "owners", *cfg, "lobby", "bob@example.org", "carol@example.org"]) == 0
    assert main(["room", "list", *cfg]) == 0
    assert "owners: bob@example.org, carol@example.org" in capsys.readouterr().out
    assert main(["room", "create", *cfg, "lobby", "alice@example.org"]) == 1
    assert main(["room", "destroy", *cfg, "lobby"]) == 0
    assert main(["room", "destroy", *cfg, "lobby"]) == 1
    assert "no room lobby@conference.example.org" in capsys.readouterr().err
