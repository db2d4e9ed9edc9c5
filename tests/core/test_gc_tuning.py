"""The serving process freezes its start-up objects and collects the young generation less often."""

import subprocess
import sys

SCRIPT = """
import gc
from appliance.app import GC_YOUNG_THRESHOLD, tune_gc_for_serving
before = gc.get_freeze_count()
tune_gc_for_serving()
assert gc.get_freeze_count() > before, "start-up objects are frozen"
assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
print("tuned")
"""


def test_tuning_freezes_and_raises_the_young_threshold() -> None:
    # In a child process: freezing is process-wide and the test process must keep its defaults.
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "tuned"
