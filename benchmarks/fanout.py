"""Fan-out: deliveries per second of one `/stream N 8` turn to K subscribed websockets.

appserver (`--in-memory`): K initialized connections, the first starts a thread with
`approvalPolicy: never`, the others `thread/resume` it; the first sends
`turn/start /stream N 8`; the clock runs until every connection has seen
`turn/completed`. Baselines: a bare trio-websocket server and a bare asyncio `websockets`
server pushing N equally sized JSON text frames (serialised once each, sent to each of the
K subscribers) plus one closing frame. All three are driven by this one client process
over raw trio-websocket; each reader only counts frames and looks for the end marker.
Sides alternate within every round; medians over rounds, ratio = appserver / baseline.

    python benchmarks/fanout.py [--quick] [--k 1,10,50,200] [--rounds R] [--sides ...]
"""

from __future__ import annotations

import argparse
import time

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
    request_text,
    rotate,
    running,
)

SIZE = 8
END = '"turn/completed"'


def stream_count(k: int, quick: bool) -> int:
    """N per K: about the same total deliveries per run (the client must keep up)."""
    if quick:
        return max(50, min(400, 4_000 // k))
    return max(1_000, min(20_000, 200_000 // k))


async def count_until_end(rpc: Rpc, counts: list[int], index: int) -> None:
    ws = rpc.ws
    n = 0
    while True:
        text = await ws.get_message()
        n += 1
        if END in text:
            counts[index] = n
            return


async def run_appserver(url: str, k: int, n: int) -> float:
    async with trio.open_nursery() as nursery:
        clients = await open_clients(nursery, url, k)
        started = await clients[0].call("thread/start", {"approvalPolicy": "never"})
        thread_id = started["thread"]["id"]
        for rpc in clients[1:]:
            await rpc.call("thread/resume", {"threadId": thread_id})
        counts = [0] * k
        go = request_text(
            999_999,
            "turn/start",
            {"threadId": thread_id, "input": [{"type": "text", "text": f"/stream {n} {SIZE}"}]},
        )
        t0 = time.perf_counter()
        async with trio.open_nursery() as readers:
            for i, rpc in enumerate(clients):
                readers.start_soon(count_until_end, rpc, counts, i)
            await clients[0].ws.send_message(go)
        elapsed = time.perf_counter() - t0
        if min(counts) < n:
            raise RuntimeError(f"appserver: a client got {min(counts)} frames < {n}")
        await close_all(clients)
    return k * n / elapsed


async def run_baseline(url: str, k: int, n: int) -> float:
    async with trio.open_nursery() as nursery:
        clients = [Rpc(await connect(nursery, url)) for _ in range(k)]
        for rpc in clients:
            await rpc.ws.send_message("sub")
            await rpc.wait_for("ok")
        control = await connect(nursery, url)
        counts = [0] * k
        t0 = time.perf_counter()
        async with trio.open_nursery() as readers:
            for i, rpc in enumerate(clients):
                readers.start_soon(count_until_end, rpc, counts, i)
            await control.send_message(f"go {n} {SIZE}")
        elapsed = time.perf_counter() - t0
        if min(counts) < n + 1:
            raise RuntimeError(f"baseline: a client got {min(counts)} frames < {n + 1}")
        await control.aclose()
        await close_all(clients)
    return k * n / elapsed


SIDES = ("appserver", "trio-websocket", "websockets")


async def main_async(ks: list[int], rounds: int, quick: bool, sides: list[str]) -> None:
    argv = {
        "appserver": appserver_argv("--in-memory"),
        "trio-websocket": baseline_argv("trio", "fanout"),
        "websockets": baseline_argv("asyncio", "fanout"),
    }
    with (
        running("appserver", argv["appserver"]) as app,
        running("trio", argv["trio-websocket"]) as bare_trio,
        running("asyncio", argv["websockets"]) as bare_asyncio,
    ):
        urls = {
            "appserver": app.url,
            "trio-websocket": bare_trio.url,
            "websockets": bare_asyncio.url,
        }
        for k in ks:
            n = stream_count(k, quick)
            rates: dict[str, list[float]] = {side: [] for side in sides}
            for round_no in range(rounds):
                for side in rotate(sides, round_no):
                    run = run_appserver if side == "appserver" else run_baseline
                    rate = await run(urls[side], k, n)
                    rates[side].append(rate)
                    print(f"  K={k:<4} N={n:<6} round {round_no + 1} {side:<15} {rate:12,.0f}/s")
            med = {side: median(values) for side, values in rates.items()}
            app_rate = med.get("appserver")
            for side in sides:
                if side == "appserver":
                    continue
                # Median of the per-round ratios: each pair ran back to back, so slow
                # phases of the shared machine hit both sides of a pair alike.
                pairs = zip(rates.get("appserver", []), rates[side], strict=False)
                ratio = median([a / b for a, b in pairs]) if app_rate else None
                target = ""
                ok = None
                if k in (10, 50) and side == "trio-websocket":
                    target = ">= 0.8x (aim > 1.0x)"
                    ok = ratio is not None and ratio >= 0.8
                report(
                    "fanout",
                    f"K={k} vs {side}",
                    app_rate or 0.0,
                    "deliveries/s",
                    baseline=med[side],
                    baseline_name=side,
                    ratio=ratio,
                    target=target,
                    ok=ok,
                    k=k,
                    n=n,
                    rounds=rounds,
                    samples={s: rates[s] for s in sides},
                )
            if sides == ["appserver"]:
                report("fanout", f"K={k}", app_rate or 0.0, "deliveries/s", k=k, n=n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small K and N, one round")
    parser.add_argument("--k", help="comma-separated K values (default 1,10,50,200)")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 3)")
    parser.add_argument(
        "--sides", default=",".join(SIDES), help=f"comma-separated subset of {','.join(SIDES)}"
    )
    args = parser.parse_args()
    default_ks = "1,10,50" if args.quick else "1,10,50,200"
    ks = [int(k) for k in (args.k or default_ks).split(",")]
    rounds = args.rounds or (1 if args.quick else 3)
    sides = [s for s in args.sides.split(",") if s]
    trio.run(main_async, ks, rounds, args.quick, sides)


if __name__ == "__main__":
    main()
