"""Request latency: p50/p99 of sequential `thread/read` round trips, 20 idle peers connected.

appserver (`--in-memory`): 20 initialized idle connections, one more starts a thread and
then times `thread/read {threadId}` one after another. Baseline: a bare trio-websocket
echo server with the same 20 idle connections, timing the same request text echoed back.
Sides alternate within every round; the figures are medians of the per-round p50 / p99.

    python benchmarks/latency.py [--quick] [--samples N] [--rounds R]
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
    is_response,
    median,
    open_clients,
    percentile,
    report,
    request_text,
    rotate,
    running,
)

IDLE = 20


async def measure(url: str, samples: int, appserver: bool) -> tuple[float, float]:
    async with trio.open_nursery() as nursery:
        idle = await open_clients(nursery, url, IDLE, initialize=appserver)
        rpc = Rpc(await connect(nursery, url))
        thread_id = "019a0000-0000-7000-8000-000000000000"
        if appserver:
            await rpc.initialize()
            thread_id = (await rpc.call("thread/start"))["thread"]["id"]
        times: list[float] = []
        for i in range(samples + samples // 10):  # the first 10% warm up
            text = request_text(1_000_000 + i, "thread/read", {"threadId": thread_id})
            t0 = time.perf_counter()
            await rpc.ws.send_message(text)
            while not is_response(await rpc.ws.get_message(), 1_000_000 + i):
                pass  # e.g. the thread/started broadcast
            if i >= samples // 10:
                times.append((time.perf_counter() - t0) * 1000)
        await close_all([*idle, rpc])
    return percentile(times, 0.5), percentile(times, 0.99)


async def main_async(samples: int, rounds: int) -> None:
    sides = ["appserver", "echo"]
    with (
        running("appserver", appserver_argv("--in-memory")) as app,
        running("echo", baseline_argv("trio", "echo")) as echo,
    ):
        urls = {"appserver": app.url, "echo": echo.url}
        p50: dict[str, list[float]] = {s: [] for s in sides}
        p99: dict[str, list[float]] = {s: [] for s in sides}
        for round_no in range(rounds):
            for side in rotate(sides, round_no):
                a, b = await measure(urls[side], samples, side == "appserver")
                p50[side].append(a)
                p99[side].append(b)
                print(f"  round {round_no + 1} {side:<10} p50 {a:6.3f} ms  p99 {b:6.3f} ms")
    for name, values, target in (("p50", p50, ""), ("p99", p99, "<= 1.5x echo p99")):
        app, echo_ = median(values["appserver"]), median(values["echo"])
        ratio = median([a / b for a, b in zip(values["appserver"], values["echo"], strict=True)])
        report(
            "latency",
            f"thread/read {name} ({IDLE} idle peers)",
            app,
            "ms",
            baseline=echo_,
            baseline_name="trio-websocket echo",
            ratio=ratio,
            target=target,
            ok=(ratio <= 1.5) if target else None,
            samples=samples,
            rounds=rounds,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few samples, one round")
    parser.add_argument("--samples", type=int, help="round trips per round (default 2000)")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 5)")
    args = parser.parse_args()
    samples = args.samples or (200 if args.quick else 2000)
    rounds = args.rounds or (1 if args.quick else 5)
    trio.run(main_async, samples, rounds)


if __name__ == "__main__":
    main()
