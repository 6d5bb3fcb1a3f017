"""Plot fan-out throughput against K for appserver and both baselines (matplotlib, Agg).

python benchmarks/plot.py [results.json] [fanout.png]
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent


def plot_fanout(rows: list[dict[str, Any]], out: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, dict[int, float]] = {}
    for row in rows:
        if row["bench"] != "fanout" or "k" not in row:
            continue
        series.setdefault("appserver", {})[row["k"]] = row["value"]
        if row.get("baseline_name"):
            series.setdefault(row["baseline_name"], {})[row["k"]] = row["baseline"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"appserver": "o-", "trio-websocket": "s--", "websockets": "^:"}
    for name, points in series.items():
        ks = sorted(points)
        label = {
            "trio-websocket": "bare trio-websocket",
            "websockets": "bare asyncio websockets",
        }.get(name, name)
        ax.plot(ks, [points[k] for k in ks], styles.get(name, "x-"), label=label)
    ax.set_xscale("log")
    ax.set_xticks(sorted({k for points in series.values() for k in points}))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("K subscribed websocket clients")
    ax.set_ylabel("deliveries / s (median)")
    ax.set_title("Fan-out of one /stream N 8 turn")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    src = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results.json"
    out = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else HERE / "fanout.png"
    plot_fanout(json.loads(src.read_text()), out)


if __name__ == "__main__":
    main()
