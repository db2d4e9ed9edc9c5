"""`parlour export --xep0227` and `parlour import --xep0227` on the databases of stopped servers: an account
moves with its password, a second import adds nothing, a file that is not XEP-0227 is refused."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from appliance.cli.main import main


def _config(folder: Path) -> Path:
    path = folder / "parlour.toml"
    folder.mkdir()
    path.write_text(f'[server]\nstate_dir = "{folder / "state"}"\n[limits]\nscram_iterations = 4096\n'
                    '[hosts."example.org"]\n')
    return path


def test_export_then_import_elsewhere(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = _config(tmp_path / "old"), _config(tmp_path / "new")
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert main(["user", "add", "-c", str(old), "alice@example.org"]) == 0
    export = tmp_path / "export.xml"
    assert main(["export", "-c", str(old), "--xep0227", str(export)]) == 0
    assert f"exported 1 accounts of example.org to {export}" in capsys.readouterr().out
    assert export.stat().st_mode & 0o777 == 0o600 and b"scram-credentials" in export.read_bytes()
    assert main(["export", "-c", str(old), "--xep0227", str(export), "--host", "other.org"]) == 1
    assert "not a host of this server: other.org" in capsys.readouterr().err

    assert main(["import", "-c", str(new), "--xep0227", str(export)]) == 0
    assert "1 accounts created" in capsys.readouterr().out
    assert main(["import", "-c", str(new), "--xep0227", str(export)]) == 0  # harmless the second time
    out = capsys.readouterr().out
    assert "alice@example.org: merged" in out and "0 accounts created, 1 existing accounts completed" in out
    assert main(["user", "list", "-c", str(new), "example.org"]) == 0
    assert capsys.readouterr().out.split() == ["alice@example.org"]

    (tmp_path / "page.xml").write_text("<html/>")
    assert main(["import", "-c", str(new), "--xep0227", str(tmp_path / "page.xml")]) == 1
    assert "not XEP-0227 data" in capsys.readouterr().err
