"""What `parlour run` (and so `make run`) prints once the server is up: an add-user command that works as
printed, and no terminal advice when systemd runs the service."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from appliance.cli.run import _print_hint
from appliance.platform.invocation import parlour_command, under_service_manager
from tests.cli.test_cli import parlour
from tests.integration.harness import start_harness


async def printed_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """The hint a development run (no config file, state in ./dev-state) prints once it is up in `tmp_path`."""
    harness = await start_harness(tmp_path / "dev-state")
    try:
        _print_hint(harness.server)
    finally:
        await harness.close()
    return capsys.readouterr().out


def add_user_command(hint: str) -> str:
    (line,) = [line for line in hint.splitlines() if "Add a user:" in line]
    return line.split("Add a user:", 1)[1].strip()


async def test_the_add_user_hint_works_as_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("INVOCATION_ID", "JOURNAL_STREAM", "PARLOUR_DEV"):
        monkeypatch.delenv(name, raising=False)
    hint = await printed_hint(tmp_path, capsys)
    assert "Stop with Ctrl+C." in hint
    command = add_user_command(hint)
    # A shell where `parlour` is not installed, as on a fresh checkout; the password comes from stdin.
    done = subprocess.run(command, shell=True, input="a good password\n", capture_output=True, text=True,
                          cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, timeout=120)
    assert done.returncode == 0, (command, done.stdout, done.stderr)
    listed = parlour("user", "list", "localhost", "--dev", cwd=tmp_path)
    assert "alice@localhost" in listed.stdout.split(), listed.stdout + listed.stderr


def test_from_a_checkout_the_hint_names_the_venv_script() -> None:
    venv = Path(sys.executable).parent.parent
    assert (venv / "bin" / "parlour").exists()
    assert parlour_command(cwd=venv.parent, path="/nonexistent") == f"{venv.name}/bin/parlour"
    assert parlour_command(cwd=venv / "bin", path="/nonexistent") == "./parlour"  # never a bare PATH lookup
    assert parlour_command(path=str(venv / "bin")) == "parlour"  # what PATH finds is this very Parlour


@pytest.mark.parametrize("variable", ["INVOCATION_ID", "JOURNAL_STREAM"])
async def test_under_systemd_nothing_about_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "8:123" if variable == "JOURNAL_STREAM" else "0123abcd")
    assert under_service_manager()
    hint = await printed_hint(tmp_path, capsys)
    assert "Ctrl+C" not in hint
    assert "python -m appliance" not in hint
    assert "user add alice@localhost" in add_user_command(hint)
