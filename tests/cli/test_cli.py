"""`python -m appliance ...` run as a real subprocess: exit codes, output, accounts in a real database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import __version__

ROOT = Path(__file__).parents[2]


def parlour(*args: str, stdin: str = "", cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "PARLOUR_DEV"}
    full_env.update({"PYTHONPATH": str(ROOT), **(env or {})})
    return subprocess.run([sys.executable, "-m", "appliance", *args], input=stdin, capture_output=True,
                          text=True, cwd=cwd or ROOT, env=full_env, timeout=120)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "parlour.toml"
    path.write_text('[server]\nstate_dir = "state"\nadmins = ["admin@example.org"]\n\n'
                    '[limits]\nscram_iterations = 4096\n\n[hosts."example.org"]\n')
    return path


def test_version() -> None:
    for args in (["version"], ["--version"]):
        result = parlour(*args)
        assert (result.returncode, result.stdout) == (0, f"parlour {__version__}\n")


def test_usage_errors_exit_2() -> None:
    assert parlour().returncode == 2
    result = parlour("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
    assert parlour("user", "add").returncode == 2


def test_check_config_good(config_file: Path) -> None:
    result = parlour("check", "config", "--config", str(config_file))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"ok   config {config_file}: 1 host (example.org)"
    assert f"ok   state {config_file.parent / 'state'}: will be created at start" in lines
    assert "ok   admins admin@example.org" in lines


def test_check_config_bad_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "parlour.toml"
    path.write_text('[c2s]\nprot = 5222\nport = 70000\n[hosts."example.org"]\n')
    result = parlour("check", "config", "--config", str(path))
    assert result.returncode == 2
    assert result.stdout.splitlines() == [
        f"FAIL config {path}: 2 problems",
        f'     {path}:2: unknown key "c2s.prot"; did you mean "c2s.port"?',
        f"     {path}:3: c2s.port = 70000: expected an integer from 1 to 65535",
        "     fix: edit the file as the lines above say, then run `parlour check config` again",
    ]


def test_check_config_missing_file(tmp_path: Path) -> None:
    result = parlour("check", "config", "--config", str(tmp_path / "none.toml"))
    assert result.returncode == 2
    assert "none.toml: no such file" in result.stdout


def test_check_config_without_file_in_dev_mode_uses_defaults(tmp_path: Path) -> None:
    result = parlour("check", "config", cwd=tmp_path, env={"PARLOUR_DEV": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok   config built-in development defaults")
    assert "1 host (localhost)" in result.stdout.splitlines()[0]


def test_run_with_a_bad_config_prints_the_problems_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "parlour.toml"
    path.write_text("[c2s]\nport = 0\n[hosts.localhost]\n")
    result = parlour("run", "--config", str(path))
    assert result.returncode == 2
    assert f"{path}:2: c2s.port = 0: expected an integer from 1 to 65535" in result.stderr


def test_user_lifecycle(config_file: Path) -> None:
    cfg = ("--config", str(config_file))

    added = parlour("user", "add", "Alice@Example.org", *cfg, stdin="correct horse\n")
    assert (added.returncode, added.stdout, added.stderr) == (0, "created alice@example.org\n", "")
    assert (config_file.parent / "state" / "parlour.db").exists()
    assert parlour("user", "add", "bob@example.org", *cfg, stdin="battery staple\n").returncode == 0

    listed = parlour("user", "list", "example.org", *cfg)
    assert (listed.returncode, listed.stdout) == (0, "alice@example.org\nbob@example.org\n")

    again = parlour("user", "add", "alice@example.org", *cfg, stdin="whatever1\n")
    assert again.returncode == 1
    assert "alice@example.org already exists" in again.stderr

    changed = parlour("user", "passwd", "alice@example.org", *cfg, stdin="new password\n")
    assert (changed.returncode, changed.stdout) == (0, "changed the password of alice@example.org\n")

    deleted = parlour("user", "del", "bob@example.org", *cfg)
    assert (deleted.returncode, deleted.stdout) == (0, "deleted bob@example.org\n")
    assert parlour("user", "list", "example.org", *cfg).stdout == "alice@example.org\n"

    gone = parlour("user", "del", "bob@example.org", *cfg)
    assert gone.returncode == 1
    assert "bob@example.org does not exist" in gone.stderr
    assert parlour("user", "passwd", "bob@example.org", *cfg, stdin="new password\n").returncode == 1


def test_password_is_checked_with_the_account_service(config_file: Path) -> None:
    from appliance.core.accounts import AccountService  # noqa: F401  (the service the CLI uses)

    cfg = ("--config", str(config_file))
    assert parlour("user", "add", "carol@example.org", *cfg, stdin="").returncode == 1
    short = parlour("user", "add", "carol@example.org", *cfg, stdin="abc\n")
    assert short.returncode == 1
    assert "password refused" in short.stderr
    assert parlour("user", "list", "example.org", *cfg).stdout == ""


def test_password_works_for_login(config_file: Path) -> None:
    """The stored keys verify the password given on stdin (and only that one)."""
    import asyncio

    from appliance.app.offline import offline_services
    from appliance.catalog import load_config
    from appliance.xmpp.jid import JID

    cfg = ("--config", str(config_file))
    assert parlour("user", "add", "dave@example.org", *cfg, stdin="s3cret pass\r\n").returncode == 0

    async def verify(password: str) -> bool:
        async with offline_services(load_config(config_file)) as services:
            return await services.accounts.verify("dave@example.org", password) == JID.parse("dave@example.org")

    assert asyncio.run(verify("s3cret pass"))
    assert not asyncio.run(verify("s3cret pass\r"))


def test_user_on_an_unknown_host_fails_clearly(config_file: Path) -> None:
    cfg = ("--config", str(config_file))
    result = parlour("user", "add", "eve@elsewhere.org", *cfg, stdin="password123\n")
    assert result.returncode == 1
    assert "elsewhere.org is not a host of this server (hosts: example.org)" in result.stderr
    assert parlour("user", "list", "elsewhere.org", *cfg).returncode == 1
    assert not (config_file.parent / "state").exists()


def test_user_with_a_malformed_jid_is_a_usage_error(config_file: Path) -> None:
    cfg = ("--config", str(config_file))
    for jid in ("example.org", "a@example.org/res", "a b@example.org"):
        result = parlour("user", "del", jid, *cfg)
        assert result.returncode == 2, jid


def test_check_config_warns_when_acme_terms_are_not_accepted(tmp_path: Path) -> None:
    path = tmp_path / "parlour.toml"
    path.write_text('[server]\nstate_dir = "state"\nadmins = ["admin@example.org"]\n\n'
                    '[acme]\nenabled = true\nemail = "admin@example.org"\n\n[hosts."example.org"]\n')
    result = parlour("check", "config", "--config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr  # a warning, not a failure
    lines = result.stdout.splitlines()
    at = lines.index("warn acme agree_tos = false: the certificate authority will not issue any certificate")
    assert lines[at + 1].strip().startswith("fix: read the terms of service of https://acme-v02.api.letsencrypt")
    path.write_text(path.read_text().replace("enabled = true\n", "enabled = true\nagree_tos = true\n"))
    assert "warn acme" not in parlour("check", "config", "--config", str(path)).stdout
