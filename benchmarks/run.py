"""Run every benchmark (each a separate client process starting its own servers) and print
one table of medians, baselines, ratios and targets.

    python benchmarks/run.py [--quick] [--only fanout,latency,memory,store]
                             [--json PATH] [--plot PATH]

`--quick` is passed through (tiny sizes, a few seconds each). A full run writes
benchmarks/results.json and, with matplotlib installed, benchmarks/fanout.png.
Exit status: non-zero only if a benchmark failed to run, never for a missed target.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
BENCHMARKS = ("fanout", "latency", "memory", "store")


def run_one(name: str, quick: bool) -> tuple[int, list[dict[str, Any]], float]:
    argv = [sys.executable, str(HERE / f"{name}.py"), *(["--quick"] if quick else [])]
    print(f"== {name}", flush=True)
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=HERE.parent)
    rows = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("BENCH "):
            rows.append(json.loads(line[len("BENCH ") :]))
        else:
            print(line, end="", flush=True)
    code = proc.wait()
    return code, rows, time.perf_counter() - started


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit in ("deliveries/s", "turns/s"):
        return f"{value:,.0f}" if value >= 1000 else f"{value:.1f}"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def table(rows: list[dict[str, Any]]) -> str:
    header = ("bench", "metric", "appserver", "unit", "baseline", "ratio", "target", "ok")
    lines = [header]
    for row in rows:
        ok = {True: "yes", False: "NO", None: ""}[row.get("ok")]
        base = fmt(row.get("baseline"), row["unit"])
        if row.get("baseline_name"):
            base += f" ({row['baseline_name']})"
        ratio = f"{row['ratio']:.2f}x" if row.get("ratio") is not None else "-"
        value = fmt(row["value"], row["unit"])
        lines.append(
            (row["bench"], row["metric"], value, row["unit"], base, ratio, row["target"], ok)
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--json", help="write the rows here (default: results.json if full)")
    parser.add_argument("--plot", help="fan-out PNG (default: fanout.png if full)")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    rows: list[dict[str, Any]] = []
    failed = []
    total = time.perf_counter()
    for name in names:
        code, got, seconds = run_one(name, args.quick)
        rows += got
        print(f"   ({name}: {seconds:.1f} s, exit {code})", flush=True)
        if code != 0:
            failed.append(name)
    print()
    print(table(rows))
    print(f"\ntotal {time.perf_counter() - total:.1f} s")
    full = not args.quick and not args.only
    json_path = args.json or (str(HERE / "results.json") if full else None)
    if json_path:
        pathlib.Path(json_path).write_text(json.dumps(rows, indent=1) + "\n")
        print(f"rows written to {json_path}")
    plot_path = args.plot or (str(HERE / "fanout.png") if full else None)
    if plot_path and any(r["bench"] == "fanout" for r in rows):
        from plot import plot_fanout

        plot_fanout(rows, pathlib.Path(plot_path))
        print(f"plot written to {plot_path}")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
