"""Where config and state live on each platform and in a development run."""

from __future__ import annotations

from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath

import pytest

from appliance.platform import paths


def layout(system: str, *, env: dict[str, str] | None = None, root: bool = False,
           existing: tuple[str, ...] = (), dev: bool | None = None) -> paths.Layout:
    return paths.layout(system=system, env=env or {}, is_root=root,
                        exists=lambda p: str(p) in existing, cwd=PurePosixPath("/home/me/src"), dev=dev)


def test_linux_service_uses_fhs() -> None:
    for found in (layout("linux", root=True), layout("linux", existing=("/etc/parlour",))):
        assert found == paths.Layout(PurePath("/etc/parlour/parlour.toml"), PurePath("/var/lib/parlour"),
                                     dev=False)


def test_linux_user_without_installation_is_a_dev_run() -> None:
    found = layout("linux")
    assert found.dev
    assert found.config_path == PurePath("/home/me/src/dev-state/parlour.toml")
    assert found.state_dir == PurePath("/home/me/src/dev-state")


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_parlour_dev_wins_over_an_installation(value: str) -> None:
    assert layout("linux", root=True, env={"PARLOUR_DEV": value}).dev
    assert not layout("linux", root=True, env={"PARLOUR_DEV": "0"}).dev


def test_explicit_dev_argument() -> None:
    assert layout("linux", root=True, dev=True).dev
    assert not layout("linux", dev=False).dev


def test_windows_program_data() -> None:
    found = layout("win32", env={"ProgramData": r"D:\ProgramData"}, existing=(r"D:\ProgramData\Parlour",))
    assert found.config_path == PureWindowsPath(r"D:\ProgramData\Parlour\parlour.toml")
    assert found.state_dir == PureWindowsPath(r"D:\ProgramData\Parlour")
    assert not found.dev


def test_macos_application_support() -> None:
    found = layout("darwin", root=True)
    assert found.config_path == PurePath("/Library/Application Support/Parlour/parlour.toml")
    assert found.state_dir == PurePath("/Library/Application Support/Parlour")


def test_process_helpers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PARLOUR_DEV", "1")
    assert paths.default_state_dir() == tmp_path / "dev-state"
    assert paths.default_config_path() == tmp_path / "dev-state" / "parlour.toml"
    assert paths.is_dev_run()
    assert paths.database_path(tmp_path) == tmp_path / "parlour.db"
