"""The Windows service's log rotates while the service runs, not only when it starts."""

from __future__ import annotations

from pathlib import Path

from appliance.cli import service


def test_the_log_rotates_while_it_is_open(tmp_path: Path) -> None:
    path = tmp_path / "data" / service.LOG_NAME
    old = path.with_name(service.LOG_NAME + ".1")
    lines = [f"line {i:03d} of the running service\n" for i in range(30)]  # 31 bytes each
    with service.open_log(path, max_bytes=200) as log:
        for line in lines:
            log.write(line)
        assert old.exists(), "nothing rotated while the file was open"
        log.flush()
        assert path.stat().st_size <= 200 + len(lines[0])
        # Nothing lost across a rotation: the previous file ends where the current one starts.
        tail = old.read_text() + path.read_text()
        assert tail.endswith(lines[-1]) and lines[-1] in path.read_text()
        assert "".join(lines).endswith(tail)
        assert len(old.read_text()) > 200  # the line that crossed the limit stays in the old file


def test_the_log_keeps_one_previous_file(tmp_path: Path) -> None:
    path = tmp_path / service.LOG_NAME
    with service.open_log(path, max_bytes=50) as log:
        for i in range(20):
            log.write(f"entry {i:02d} ........................\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [service.LOG_NAME, service.LOG_NAME + ".1"]
