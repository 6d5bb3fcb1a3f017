"""Memory: server RSS per loaded idle thread and per idle initialized websocket connection.

A fresh appserver (`--in-memory`) per round: after a warm-up (a few threads and
connections, so imports and caches are paid for), RSS before and after 1,000
`thread/start` (the caller stays subscribed, so all stay loaded) and, separately, before
and after 500 more initialized idle connections. KiB/unit = delta RSS / count. Reference:
a bare trio-websocket echo server holding the same number of idle connections.
RSS is read with psutil (falls back to /proc/PID/status VmRSS).

    python benchmarks/memory.py [--quick] [--threads N] [--connections N] [--rounds R]
"""

from __future__ import annotations

import argparse
import pathlib

import trio
from _common import (
    Rpc,
    appserver_argv,
    baseline_argv,
    close_all,
    connect,
    median,
    open_clients,
    report,
    running,
)

WARMUP = 20
PIPELINE = 50  # thread/start requests in flight at once


def rss_bytes(pid: int) -> int:
    try:
        import psutil
    except ImportError:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS") from None
    return int(psutil.Process(pid).memory_info().rss)


async def settled_rss(pid: int) -> int:
    await trio.sleep(0.3)  # let the server finish what it was doing
    return rss_bytes(pid)


async def start_threads(rpc: Rpc, count: int) -> None:
    """Pipelined thread/start on one connection, PIPELINE at a time."""
    done = 0
    while done < count:
        batch = min(PIPELINE, count - done)
        first = rpc.next_id
        for i in range(batch):
            await rpc.ws.send_message(
                f'{{"jsonrpc":"2.0","id":{first + i},"method":"thread/start","params":{{}}}}'
            )
        rpc.next_id += batch
        answered = 0
        while answered < batch:
            text = await rpc.ws.get_message()
            if '"result":{"thread"' in text[:80]:
                answered += 1
            elif '"error"' in text[:80]:
                raise RuntimeError(text[:300])
        done += batch


async def appserver_round(threads: int, connections: int) -> tuple[float, float]:
    with running("appserver", appserver_argv("--in-memory")) as app:
        async with trio.open_nursery() as nursery:
            rpc = Rpc(await connect(nursery, app.url))
            await rpc.initialize()
            await start_threads(rpc, WARMUP)
            before = await settled_rss(app.pid)
            await start_threads(rpc, threads)
            after_threads = await settled_rss(app.pid)
            # Opened after the threads, so no idle peer has thread/started frames queued.
            warm = await open_clients(nursery, app.url, WARMUP)
            after_warm = await settled_rss(app.pid)
            peers = await open_clients(nursery, app.url, connections)
            after_peers = await settled_rss(app.pid)
            await close_all([rpc, *warm, *peers])
    per_thread = (after_threads - before) / threads / 1024
    per_conn = (after_peers - after_warm) / connections / 1024
    return per_thread, per_conn


async def baseline_round(connections: int) -> float:
    with running("echo", baseline_argv("trio", "echo")) as echo:
        async with trio.open_nursery() as nursery:
            warm = [Rpc(await connect(nursery, echo.url)) for _ in range(WARMUP)]
            before = await settled_rss(echo.pid)
            peers = [Rpc(await connect(nursery, echo.url)) for _ in range(connections)]
            for rpc in peers:  # one round trip each, like appserver's initialize
                await rpc.ws.send_message("hello")
                await rpc.ws.get_message()
            after = await settled_rss(echo.pid)
            await close_all([*warm, *peers])
    return (after - before) / connections / 1024


async def main_async(threads: int, connections: int, rounds: int) -> None:
    per_thread: list[float] = []
    per_conn: list[float] = []
    base_conn: list[float] = []
    for round_no in range(rounds):
        a, b = await appserver_round(threads, connections)
        c = await baseline_round(connections)
        per_thread.append(a)
        per_conn.append(b)
        base_conn.append(c)
        print(
            f"  round {round_no + 1}: appserver {a:6.1f} KiB/thread  {b:6.1f} KiB/connection;"
            f" bare trio-websocket {c:6.1f} KiB/connection"
        )
    pt, pc, bc = median(per_thread), median(per_conn), median(base_conn)
    report(
        "memory",
        f"per idle loaded thread ({threads})",
        pt,
        "KiB",
        target="<= 64 KiB",
        ok=pt <= 64,
        rounds=rounds,
    )
    report(
        "memory",
        f"per idle connection ({connections})",
        pc,
        "KiB",
        baseline=bc,
        baseline_name="trio-websocket idle conn",
        ratio=pc / bc if bc > 0 else None,
        target="<= 64 KiB",
        ok=pc <= 64,
        rounds=rounds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 threads, 50 connections")
    parser.add_argument("--threads", type=int, help="threads started (default 1000)")
    parser.add_argument("--connections", type=int, help="idle connections (default 500)")
    parser.add_argument("--rounds", type=int, help="rounds (default 3)")
    args = parser.parse_args()
    threads = args.threads or (100 if args.quick else 1000)
    connections = args.connections or (50 if args.quick else 500)
    rounds = args.rounds or (1 if args.quick else 3)
    trio.run(main_async, threads, connections, rounds)


if __name__ == "__main__":
    main()
