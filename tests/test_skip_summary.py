"""The suite's closing line about skipped tests (tests/conftest.py), seen in a real pytest run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]

SAMPLE = '''
import pytest

needs_chromium = pytest.mark.skipif(True, reason="needs /usr/bin/chromium (apt-get install chromium)")

@needs_chromium
def test_page(): pass

@needs_chromium
def test_other_page(): pass

def test_acme(): pytest.skip("needs pebble")

def test_runs(): pass
'''


def run_pytest(folder: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider", str(folder)],
        capture_output=True, text=True, cwd=folder, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_one_line_says_what_was_skipped_and_why(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    lines = run_pytest(tmp_path).splitlines()
    assert "skipped 3: needs /usr/bin/chromium (apt-get install chromium) (2); needs pebble (1)" in lines


def test_nothing_skipped_nothing_said(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text("def test_runs(): pass\n")
    assert "skipped" not in run_pytest(tmp_path)
