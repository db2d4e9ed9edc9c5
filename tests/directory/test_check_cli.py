"""`parlour check config` with [ldap]: the directory is tried as the server will use it."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cli.main import main
from tests.directory.slapd import PEOPLE, SERVICE_DN, SERVICE_PASSWORD, Slapd


def write_config(tmp_path: Path, slapd: Slapd, password: str) -> Path:
    path = tmp_path / "parlour.toml"
    path.write_text(f'[server]\nstate_dir = "{tmp_path / "state"}"\n[hosts."example.org"]\n'
                    f'[ldap]\nenabled = true\nuri = "{slapd.uri}"\nca_file = "{slapd.ca.ca}"\n'
                    f'bind_dn = "{SERVICE_DN}"\nbind_password = "{password}"\nbase = "{PEOPLE}"\n')
    return path


def test_check_config_tries_the_directory(tmp_path: Path, slapd: Slapd, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_config(tmp_path, slapd, SERVICE_PASSWORD)
    main(["check", "config", "-c", str(good)])
    out = capsys.readouterr().out
    assert f"ok   ldap connected to {slapd.uri} (StartTLS); bound as {SERVICE_DN}; 5 users under {PEOPLE}" in out

    bad = write_config(tmp_path, slapd, "wrong")
    assert main(["check", "config", "-c", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "FAIL ldap the directory refused the service account" in out
    assert "fix: fix [ldap] as the message says" in out
