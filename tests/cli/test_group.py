"""`parlour group`: shared-roster groups in the database of a stopped server."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cli.main import main


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "parlour.toml"
    path.write_text(f'[server]\nstate_dir = "{tmp_path / "state"}"\n[hosts."example.org"]\n')
    return path


def test_group_lifecycle(config_file: Path, capsys: pytest.CaptureFixture[str],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = ["-c", str(config_file)]
    for name in ("alice", "bob"):
        monkeypatch.setattr("sys.stdin", __import__("io").StringIO("correct horse battery\n"))
        assert main(["user", "add", *cfg, f"{name}@example.org"]) == 0
    assert main(["group", "add", *cfg, "example.org", "Staff", "alice"]) == 0
    assert main(["group", "add", *cfg, "example.org", "Everybody", "--everyone"]) == 0
    assert main(["group", "join", *cfg, "example.org", "Staff", "bob@example.org"]) == 0
    assert main(["group", "rename", *cfg, "example.org", "Staff", "Crew"]) == 0
    capsys.readouterr()
    assert main(["group", "list", *cfg, "example.org"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Crew\tlisted members\talice@example.org, bob@example.org",
        "Everybody\teveryone on example.org\t-",
    ]
    assert main(["group", "join", *cfg, "example.org", "Crew", "carol"]) == 1
    assert "no account carol@example.org" in capsys.readouterr().err
    assert main(["group", "leave", *cfg, "example.org", "Crew", "alice"]) == 0
    assert main(["group", "del", *cfg, "example.org", "Everybody"]) == 0
    assert main(["group", "del", *cfg, "example.org", "Everybody"]) == 1
    assert "There is no group Everybody on example.org" in capsys.readouterr().err
    assert main(["group", "list", *cfg, "nowhere.example"]) == 1
