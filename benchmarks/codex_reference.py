"""appserver side by side with the real Codex app-server 0.171 (issue 18).

Needs the reference kit (`../shared/codex-reference`, installed with its `setup.sh`); without
it this prints why and exits 0. Run it from anywhere; it re-runs itself inside the kit's
loopback-only network namespace (`serve.sh -- ...`), where Codex and appserver both listen
on 127.0.0.1 and Codex's model is the kit's fake model:

    python benchmarks/codex_reference.py            # K = 1, 10, 50; 20,000 deltas; 2 rounds
    python benchmarks/codex_reference.py --quick    # small sizes, a smoke run

Workloads, the same on both servers:

- fan-out: one thread, K subscribed websocket clients spread over two client processes
  (they are never the bottleneck: `_rawws.py`, a plain-socket reader at ~1-2 µs per
  frame, where trio-websocket's 10-20 µs made the readers the limit), one turn
  `/stream N 16`; deliveries/s from `turn/start` until every client saw `turn/completed`,
  and **server CPU per delivered delta**: the user + system CPU of the server's process
  tree (/proc, via psutil) read right before the turn starts and right after the last
  client saw `turn/completed`, divided by K * N;
- request latency: p50/p99 of sequential `thread/read`, `thread/list`,
  `thread/loaded/list` (2,000 each) and `turn/start` (400) round trips on one connection
  per side (the same blocking plain-socket client), after a warm-up, the two sides
  interleaved in blocks (`latency`), so the machine's noise falls on both alike; the
  `floor` rows are the same client against `_floor_server.py`, which only answers (the
  client, the kernel and the machine's wake-up jitter: what no server can beat);
- memory: RSS growth of the server's process tree per idle initialized connection and per
  loaded thread (`thread/start`, the caller stays subscribed).

Ratios are appserver / Codex, measured in the same run (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import psutil

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from _common import HERE, REPO, appserver_argv, median, percentile, report, running
from _rawws import close_all, count_until, open_clients

KIT = pathlib.Path(
    os.environ.get("CODEX_REFERENCE_KIT", REPO.parent / "shared" / "codex-reference")
)
DELTA_CHARS = 16


# --- the server's process tree ------------------------------------------------------------


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def tree_cpu(pid: int) -> float:
    total = 0.0
    for proc in tree(pid):
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def tree_rss(pid: int) -> int:
    total = 0
    for proc in tree(pid):
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def listener_pid(url: str) -> int:
    """The pid of the process listening on the URL's port (Codex, started by serve.sh)."""
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return conn.pid
    raise RuntimeError(f"no process listens on port {port}")


# --- fan-out ------------------------------------------------------------------------------

DELTA = b'"item/agentMessage/delta"'
COMPLETED = b'"turn/completed"'


def worker(url: str, thread_id: str, count: int) -> None:
    """A client process: `count` subscribers; prints `ready`, then `done DELTAS T_END`."""
    clients = open_clients(url, count)
    for ws in clients:
        ws.call("thread/resume", {"threadId": thread_id})
    print("ready", flush=True)
    deltas = count_until(clients, DELTA, COMPLETED)
    print(f"done {deltas} {time.time()}", flush=True)
    close_all(clients)


def start_workers(url: str, thread_id: str, k: int) -> list[subprocess.Popen[str]]:
    counts = [k // 2 + k % 2, k // 2] if k > 1 else [1]
    argv = [sys.executable, __file__, "--worker", url, thread_id]
    return [
        subprocess.Popen([*argv, str(c)], stdout=subprocess.PIPE, text=True) for c in counts if c
    ]


def progress(message: str) -> None:
    print(f"  ... {message}", file=sys.stderr, flush=True)


def fanout(name: str, url: str, pid: int, k: int, n: int) -> dict[str, float]:
    progress(f"{name}: fan-out K={k} N={n}")
    (control,) = open_clients(url, 1)
    started = control.call("thread/start", {"approvalPolicy": "never"})
    thread_id = started["thread"]["id"]
    # Codex can resume a thread only once it has a turn (a rollout).
    say = {"threadId": thread_id, "input": [{"type": "text", "text": "/say hi"}]}
    control.call("turn/start", say)
    control.wait_for('"turn/completed"')
    progress(f"{name}: thread {thread_id} started")
    workers = start_workers(url, thread_id, k)
    for proc in workers:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{name}: a fan-out worker failed to subscribe")
    progress(f"{name}: {k} subscribers ready")
    control.call("thread/unsubscribe", {"threadId": thread_id})
    cpu0, t0 = tree_cpu(pid), time.time()
    text = f"/stream {n} {DELTA_CHARS}"
    control.call("turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": text}]})
    ends, deltas = [], 0
    for proc in workers:
        assert proc.stdout is not None
        _, got, end = proc.stdout.readline().split()
        deltas += int(got)
        ends.append(float(end))
    cpu1 = tree_cpu(pid)
    for proc in workers:
        proc.wait()
    close_all([control])
    elapsed = max(ends) - t0
    if deltas < k * n:
        raise RuntimeError(f"{name}: clients saw {deltas} of {k * n} deltas")
    return {
        "deliveries_per_s": deltas / elapsed,
        "cpu_us_per_delivery": (cpu1 - cpu0) / deltas * 1e6,
        "cpu_share": (cpu1 - cpu0) / elapsed,
    }


# --- latency and memory ---------------------------------------------------------------------


LATENCY_BLOCK = 50  # requests per side before the other side takes its turn
WARM_UP = 20  # requests per side and method not counted (caches, first allocations)


def latency(urls: dict[str, str], rounds: int) -> dict[str, dict[str, tuple[float, float]]]:
    """p50/p99 per side and method, the two sides interleaved: blocks of LATENCY_BLOCK
    round trips, alternately, the side that goes first rotating, so a burst of noise on
    the shared machine falls on both sides alike rather than on whichever ran then."""
    rpcs = {name: open_clients(url, 1)[0] for name, url in urls.items()}
    calls: dict[str, list[tuple[str, Any]]] = {}
    for name, rpc in rpcs.items():
        thread_id = rpc.call("thread/start", {"approvalPolicy": "never"})["thread"]["id"]
        calls[name] = [
            ("thread/read", {"threadId": thread_id}),
            ("thread/list", {}),
            ("thread/loaded/list", {}),
            ("turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": "/say hi"}]}),
        ]

    def timed(name: str, method: str, params: Any) -> float:
        t0 = time.perf_counter()
        rpcs[name].call(method, params)
        elapsed = (time.perf_counter() - t0) * 1000
        if method == "turn/start":
            rpcs[name].wait_for('"turn/completed"')
        return elapsed

    out: dict[str, dict[str, tuple[float, float]]] = {name: {} for name in rpcs}
    names = list(rpcs)
    for i, method in enumerate(m for m, _ in calls[names[0]]):
        count, block = (rounds, LATENCY_BLOCK) if method != "turn/start" else (rounds // 5, 10)
        times: dict[str, list[float]] = {name: [] for name in names}
        for name in names:
            for _ in range(WARM_UP):
                timed(name, method, calls[name][i][1])
        for b in range(max(1, count // block)):
            for name in names if b % 2 == 0 else names[::-1]:
                times[name] += [timed(name, method, calls[name][i][1]) for _ in range(block)]
        for name in names:
            out[name][method] = (percentile(times[name], 0.5), percentile(times[name], 0.99))
    close_all(list(rpcs.values()))
    return out


def memory(url: str, pid: int, connections: int, threads: int) -> dict[str, float]:
    before = tree_rss(pid)
    clients = open_clients(url, connections)
    per_connection = (tree_rss(pid) - before) / connections
    (rpc,) = open_clients(url, 1)
    before = tree_rss(pid)
    for _ in range(threads):
        rpc.call("thread/start", {"approvalPolicy": "never"})
    per_thread = (tree_rss(pid) - before) / threads
    close_all([*clients, rpc])
    return {"kib_per_connection": per_connection / 1024, "kib_per_thread": per_thread / 1024}


# --- the run ----------------------------------------------------------------------------------


def ratio_row(
    bench: str,
    metric: str,
    unit: str,
    ours: float,
    theirs: float,
    goal: float | None,
    lower_is_better: bool = True,
    who: str = "appserver",
) -> None:
    ratio = ours / theirs if theirs else float("nan")
    ok = None
    target = ""
    if goal is not None:
        ok = ratio <= goal if lower_is_better else ratio >= goal
        target = f"<= {goal}x Codex" if lower_is_better else f">= {goal}x Codex"
    report(
        bench, metric, ours, unit, baseline=theirs, baseline_name="codex", ratio=ratio,
        target=target, ok=ok,
    )  # fmt: skip
    verdict = f"  goal {target}: {'ok' if ok else 'MISSED'}" if target else ""
    digits = 3 if unit == "ms" else 2
    print(
        f"{bench:8} {metric:34} {who:9} {ours:10.{digits}f} {unit:8} codex "
        f"{theirs:10.{digits}f}  ratio {ratio:5.2f}{verdict}",
        flush=True,
    )


def medians(rows: list[dict[str, float]], metric: str) -> float:
    return median([row[metric] for row in rows])


def inner(args: argparse.Namespace) -> None:
    codex_url = os.environ["CODEX_REFERENCE_URL"]
    codex_pid = listener_pid(codex_url)
    with running("appserver", appserver_argv("--in-memory")) as ours:
        sides = {"appserver": (ours.url, ours.pid), "codex": (codex_url, codex_pid)}
        for k, n in zip(args.k, args.deltas, strict=True):
            results: dict[str, list[dict[str, float]]] = {"appserver": [], "codex": []}
            for round_no in range(args.rounds):
                order = list(sides) if round_no % 2 == 0 else list(sides)[::-1]
                for name in order:
                    url, pid = sides[name]
                    results[name].append(fanout(name, url, pid, k, n))
            for metric, unit, goal, lower in (
                ("cpu_us_per_delivery", "us", 0.2, True),
                ("deliveries_per_s", "1/s", 3.0 if k >= 10 else None, False),
                ("cpu_share", "cores", None, True),
            ):
                ours_m = medians(results["appserver"], metric)
                theirs_m = medians(results["codex"], metric)
                ratio_row(f"fanout{k}", metric, unit, ours_m, theirs_m, goal, lower)
        with running("floor", [sys.executable, str(HERE / "_floor_server.py")]) as floor:
            urls = {name: url for name, (url, _) in sides.items()} | {"floor": floor.url}
            lat = latency(urls, args.requests)
        for method in lat["appserver"]:
            for i, q in enumerate(("p50", "p99")):
                ours_l, theirs_l = lat["appserver"][method][i], lat["codex"][method][i]
                goal = 0.5 if q == "p99" else None
                ratio_row("latency", f"{method} {q}", "ms", ours_l, theirs_l, goal)
                floor_l = lat["floor"][method][i]
                ratio_row("floor", f"{method} {q}", "ms", floor_l, theirs_l, None, who="floor")
        mem = {
            name: memory(url, pid, args.connections, args.threads)
            for name, (url, pid) in sides.items()
        }
        for metric, goal in (("kib_per_connection", 0.25), ("kib_per_thread", 0.05)):
            ours_b, theirs_b = mem["appserver"][metric], mem["codex"][metric]
            ratio_row("memory", metric, "KiB", ours_b, theirs_b, goal)


def outer(argv: Sequence[str]) -> int:
    serve = KIT / "serve.sh"
    if not serve.exists():
        print(f"codex_reference: skipped: no reference kit at {KIT} (CODEX_REFERENCE_KIT)")
        return 0
    if shutil.which("unshare") is None:
        print("codex_reference: skipped: unshare (util-linux) is missing")
        return 0
    probe = subprocess.run(
        ["bash", str(serve), "--", "true"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        print(f"codex_reference: skipped: the kit does not run: {probe.stderr.strip()[-300:]}")
        return 0
    return subprocess.call(["bash", str(serve), "--", sys.executable, __file__, *argv])


def parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    p.add_argument("--rounds", type=int, default=2, help="fan-out rounds per side (default 2)")
    p.add_argument("--k", dest="only_k", help="comma-separated subscriber counts (1,10,50)")
    p.add_argument("--worker", nargs=3, metavar=("URL", "THREAD", "COUNT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.k, args.deltas, args.rounds = [1, 4], [500, 500], 1
        args.requests, args.connections, args.threads = 50, 20, 10
    else:
        args.k, args.deltas = [1, 10, 50], [20000, 20000, 20000]
        args.requests, args.connections, args.threads = 2000, 200, 100
    if args.only_k:
        args.k = [int(k) for k in args.only_k.split(",")]
        args.deltas = [500 if args.quick else 20000] * len(args.k)
    return args


def main(argv: Sequence[str]) -> int:
    args = parse(argv)
    if args.worker:
        url, thread_id, count = args.worker
        worker(url, thread_id, int(count))
        return 0
    if "CODEX_REFERENCE_URL" not in os.environ:
        return outer(argv)
    inner(args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
