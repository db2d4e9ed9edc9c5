"""`sudo parlour cert ...` leaves the state folder to its owner; unreadable files stop the start plainly.

Real processes as real users: the tests run as root and use uid 65534 (nobody) as the service user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.certs.selfsigned import ensure_self_signed
from tests.integration.harness import free_port
from tests.integration.pebble import CHALLTESTSRV, MISSING, PEBBLE, run_pebble

ROOT = Path(__file__).parents[2]
SERVICE = 65534
SETPRIV = shutil.which("setpriv")

pytestmark = pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0 or not SETPRIV,
                                reason="needs root and setpriv to switch users")


@pytest.fixture
def base() -> Iterator[Path]:
    """A folder every user can enter (pytest's own tmp_path is root's only)."""
    folder = Path(tempfile.mkdtemp(prefix="parlour-owner-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def config(base: Path, acme: str = "") -> Path:
    path = base / "parlour.toml"
    ports = [free_port() for _ in range(4)]
    path.write_text('[server]\nstate_dir = "state"\n\n[limits]\nscram_iterations = 4096\n\n'
                    f'[c2s]\nport = {ports[0]}\ndirect_tls_port = {ports[1]}\ninterfaces = ["127.0.0.1"]\n\n'
                    f'[http]\nport = {ports[2]}\ntls_port = {ports[3]}\ninterfaces = ["127.0.0.1"]\n\n'
                    f'{acme}[hosts."example.org"]\n')
    state = base / "state"
    state.mkdir()
    os.chown(state, SERVICE, SERVICE)
    return path


def parlour(*args: str, user: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PARLOUR_DEV", "USER", "LOGNAME")}
    env["PYTHONPATH"] = str(ROOT)
    # setpriv (util-linux) rather than Popen(user=): the interpreter may live under root's home.
    switch = [SETPRIV, f"--reuid={user}", f"--regid={user}", "--clear-groups"] if user is not None else []
    return subprocess.run([*switch, sys.executable, "-m", "appliance", *args], capture_output=True, text=True,
                          cwd="/", env=env, timeout=120)


def test_sudo_cert_import_leaves_the_files_to_the_state_folders_owner(base: Path) -> None:
    path = config(base)
    made = ensure_self_signed(base / "mine", ["example.org"], hostname="their-ca")
    os.chmod(made.key, 0o600)  # like /etc/letsencrypt/live/...: only root may read it
    result = parlour("cert", "import", str(made.chain), str(made.key), "--config", str(path))
    assert result.returncode == 0, result.stderr
    written = [p for p in (base / "state").rglob("*")]
    assert written and all(p.stat().st_uid == SERVICE for p in written), [
        (str(p), p.stat().st_uid) for p in written]


def test_an_unreadable_file_at_start_is_one_plain_line(base: Path) -> None:
    path = config(base, '[acme]\nenabled = true\ndirectory = "https://127.0.0.1:1/dir"\nagree_tos = true\n'
                        'http_port = 1\n\n')
    acme = base / "state" / "acme"  # left behind by `sudo parlour cert renew` before this fix
    acme.mkdir(mode=0o700)
    (acme / "certificate.pem").write_text("x")
    result = parlour("run", "--config", str(path), user=SERVICE)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"Parlour cannot start: {acme / 'certificate.pem'}: permission denied for user nobody. "
        f"Fix: sudo chown -R nobody: {base / 'state'}")


@pytest.mark.skipif(not (PEBBLE and CHALLTESTSRV), reason=MISSING)
def test_sudo_cert_renew_leaves_acme_and_certs_to_the_state_folders_owner(base: Path) -> None:
    http01 = free_port()
    with run_pebble(base / "pebble", http_port=http01, tls_port=free_port()) as pebble:
        os.chmod(pebble.listener_ca, 0o644)
        path = config(base, f'[acme]\nenabled = true\ndirectory = "{pebble.directory}"\nagree_tos = true\n'
                            f'email = "admin@example.org"\nhttp_port = {http01}\n'
                            f'ca_bundle = "{pebble.listener_ca}"\nnameservers = ["{pebble.dns}"]\n\n')
        for name in ("example.org", "conference.example.org", "upload.example.org", "pubsub.example.org"):
            pebble.add_a(name)
        result = parlour("cert", "renew", "--config", str(path))  # as root, like `sudo parlour cert renew`
    assert result.returncode == 0, result.stdout + result.stderr
    assert "New certificate for example.org" in result.stdout
    written = list((base / "state").rglob("*"))
    assert any(p.name == "certificate.pem" for p in written)
    assert all(p.stat().st_uid == SERVICE for p in written), [(str(p), p.stat().st_uid) for p in written]
