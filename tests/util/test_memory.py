"""util.memory: freed heap goes back to the operating system (glibc's malloc_trim)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from appliance.util import memory

# In a fresh process: fill 200 MiB of heap with 64 KiB buffers (below glibc's mmap threshold), free all
# but every 32nd (so the heap cannot simply shrink from the top) and print RSS in MiB before and after
# give_back().
PROBE = """
from appliance.util import memory

def rss():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) // 1024 for l in status if l.startswith("VmRSS:"))

buffers = [bytes(64 * 1024 - 100) + bytes([n % 256]) for n in range(3200)]
kept = buffers[::32]
del buffers
before = rss()
memory.give_back()
print(before, rss())
"""


@pytest.mark.skipif(memory._malloc_trim() is None or not sys.platform.startswith("linux"),
                    reason="glibc's malloc_trim only")
def test_freed_heap_is_given_back() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    before, after = map(int, out.split())
    assert before - after > 100, (before, after)  # MiB


def test_give_back_is_safe_to_call_any_time() -> None:
    assert memory.give_back() in (True, False)
