"""benchmarks/cluster.py runs: `--quick` exits 0 and prints every figure. Never asserts a
time (the machine is shared and noisy). Behind `-m slow`, like the benchmark smoke run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pg_support import find_pg_bin

from support import REPO

FIGURES = (
    "spread T=",
    "fan-out K=",
    "extra latency p50",
    "extra latency p99",
    "short turns on PostgreSQL",
    "failover SIGKILL",
)


@pytest.mark.slow
@pytest.mark.skipif(find_pg_bin() is None, reason="PostgreSQL is not installed")
def test_quick_cluster_benchmark_runs_and_prints_its_figures() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "cluster.py"), "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    rows = [json.loads(ln[6:]) for ln in proc.stdout.splitlines() if ln.startswith("BENCH ")]
    metrics = [row["metric"] for row in rows]
    for figure in FIGURES:
        assert any(figure in m for m in metrics), f"{figure!r} missing from {metrics}"
    assert all(row["value"] > 0 for row in rows), rows
