"""Summarise a py-spy `--format raw` (collapsed stacks) profile: top functions by own
(self) samples and by inclusive samples, as percentages of all samples.

    BENCH_SERVER_PREFIX="py-spy record -r 250 -f raw -o /tmp/k10.txt --" \\
        python benchmarks/fanout.py --k 10 --rounds 1 --sides appserver
    python benchmarks/profile_summary.py /tmp/k10.txt [--top 25] [--filter appserver/]
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import re

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match.group("file")
    for marker in ("site-packages/", "/lib/python3", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match.group('func')} ({path})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--filter", default="", help="only functions whose file contains this")
    args = parser.parse_args()
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in pathlib.Path(args.profile).read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [short(f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    print(f"{total} samples")
    for title, counter in (("self", own), ("inclusive", inclusive)):
        print(f"\ntop {args.top} by {title} time:")
        shown = 0
        for func, count in counter.most_common():
            if args.filter and args.filter not in func:
                continue
            print(f"  {100 * count / total:5.1f}%  {func}")
            shown += 1
            if shown >= args.top:
                break


if __name__ == "__main__":
    main()
