"""The benchmark suite runs: `benchmarks/run.py --quick` exits 0 and prints its figures.

Never asserts a time: the machine is shared and noisy. Behind `-m slow` (15-20 s, the
whole quick suite): run at each stop with the benchmarks themselves.
"""

from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NEEDED = ("websockets", "psutil")


@pytest.mark.slow
@pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in NEEDED),
    reason="benchmark dependencies (websockets, psutil) are not installed",
)
def test_quick_benchmarks_run_and_print_their_figures() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    out = proc.stdout
    for figure in (
        "K=10 vs trio-websocket",
        "K=10 vs websockets",
        "thread/read p99",
        "per idle loaded thread",
        "per idle connection",
        "short turns",
        "thread/list first page",
        "thread/resume cold resume",
    ):
        assert figure in out, f"{figure!r} missing from:\n{out[-4000:]}"
