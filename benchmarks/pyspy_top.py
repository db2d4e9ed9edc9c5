"""Summarise py-spy's collapsed stacks (`--format raw`): the functions with the most samples, by self
time (the innermost frame) and by total time (anywhere on the stack, counted once per sample).

    python benchmarks/pyspy_top.py /tmp/parlour-profile/pyspy.txt [N=40]
"""

from __future__ import annotations

import re
import sys
from collections import Counter

_LINE = re.compile(r" \((?P<file>[^()]*):\d+\)$")


def frame_name(frame: str) -> str:
    """`func (path/file.py:123)` -> `func (file.py)`: lines differ per sample, functions do not."""
    match = _LINE.search(frame)
    if match is None:
        return frame
    return f"{frame[: match.start()]} ({match.group('file').rsplit('/', 1)[-1]})"


def main() -> None:
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    with open(path, encoding="utf-8") as stacks:
        for line in stacks:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            frames = [frame_name(f) for f in stack.split(";")]
            samples += count
            own[frames[-1]] += count
            for name in set(frames):
                total[name] += count
    print(f"{samples} samples")
    print(f"\n-- self (innermost frame), top {top}")
    for name, count in own.most_common(top):
        print(f"{100 * count / samples:5.1f}%  {name}")
    print(f"\n-- total (on the stack), top {top}")
    for name, count in total.most_common(top):
        print(f"{100 * count / samples:5.1f}%  {name}")


if __name__ == "__main__":
    main()
