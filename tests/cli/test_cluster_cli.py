"""`parlour cluster status` outside a running cluster: a standalone configuration, and a Redis that does not
answer (the running cluster is in tests/integration/test_cluster.py)."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_cli import parlour
from tests.integration.harness import free_port


def _config(tmp_path: Path, cluster: str) -> Path:
    path = tmp_path / "parlour.toml"
    path.write_text(f'[server]\nstate_dir = "state"\n\n[storage]\nurl = "postgresql://parlour@127.0.0.1/x"\n\n'
                    f'{cluster}[hosts."example.org"]\n')
    return path


def test_a_standalone_server_has_no_cluster_to_show(tmp_path: Path) -> None:
    result = parlour("cluster", "status", "--config", str(_config(tmp_path, "")))
    assert result.returncode == 1
    assert "[cluster] enabled is false" in result.stderr


def test_an_unreachable_redis_is_one_plain_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    config = _config(tmp_path, f'[cluster]\nenabled = true\nredis_url = "redis://:pw@127.0.0.1:{port}/0"\n\n')
    result = parlour("cluster", "status", "--config", str(config))
    assert result.returncode == 1
    assert f"cannot read the cluster from 127.0.0.1:{port}/0" in result.stderr
    assert "Traceback" not in result.stderr and ":pw@" not in result.stderr  # no password on the screen
