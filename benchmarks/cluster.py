"""Cluster (issue 16 step 3): appserver nodes on one PostgreSQL, measured from outside.

- spread: T threads with K subscribers each, one `/stream N 8` turn per thread at once;
  total deliveries/s with every thread on 1 node vs the threads spread over 2 nodes
  (each thread's subscribers on the node that owns it). Subscribers live in 2 worker
  processes of their own (`--worker`), the same for both sides. Goal >= 1.3x.
- remote fan-out: one thread owned by node A, K subscribers connected to node B (they
  follow it through PostgreSQL) vs connected to A; deliveries/s. Goal >= 0.5x.
- latency: one subscriber on the owner A and one on B, both opted in to `seq` (§13);
  per event, B's arrival time minus A's (same client process, same clock), over M short
  turns: p50/p99 of what the remote hop adds.
- turns/s: 10 connections running `/say hi` turns back to back on one node, PostgreSQL
  (a cluster node) vs SQLite (`--data-dir`).
- failover: A owns a thread running `/sleep 60`, a client on B subscribed; SIGKILL A;
  time until a turn started from B has completed there (lease: `--lease`).

Sides alternate within every round; medians over rounds; ratios from the same run. A
PostgreSQL is started for the run (tests/pg_support.py's starter) unless `--pg-url`.

    python benchmarks/cluster.py [--quick] [--rounds R] [--pg-url URL] [--lease S]
                                 [--only spread,remote,latency,turns,failover]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import trio
from _cluster_nodes import (
    END,
    count_until_end,
    nodes,
    postgres,
    sqlite_node,
    start_worker,
    turn_text,
    worker_main,
)
from _common import Rpc, close_all, connect, median, open_clients, percentile, report, rotate

PARTS = ("spread", "remote", "latency", "turns", "failover")
WORKERS = 2


async def new_thread(rpc: Rpc) -> str:
    started = await rpc.call("thread/start", {"approvalPolicy": "never"})
    thread_id: str = started["thread"]["id"]
    return thread_id


# --- spread over 1 vs 2 nodes --------------------------------------------------------------


async def spread_rate(urls: list[str], threads: int, k: int, n: int) -> float:
    """Thread i is started on urls[i % len(urls)], its K subscribers (in the worker
    processes) connect to that same node; deliveries/s until every subscriber is done."""
    async with trio.open_nursery() as nursery:
        owners = [Rpc(await connect(nursery, url)) for url in urls]
        for rpc in owners:
            await rpc.initialize("bench-owner")
        ids = [(i % len(urls), await new_thread(owners[i % len(urls)])) for i in range(threads)]
        subscribers = [(urls[node], tid) for node, tid in ids for _ in range(k)]
        workers = [await start_worker(nursery) for _ in range(WORKERS)]
        for w, worker in enumerate(workers):
            await worker.send_job(subscribers[w::WORKERS])
        for worker in workers:
            assert await worker.line() == "READY"
        for node, tid in ids:  # the starters leave: only the workers' sockets count
            await owners[node].call("thread/unsubscribe", {"threadId": tid})
        t0 = time.time()
        for i, (node, tid) in enumerate(ids):
            await owners[node].ws.send_message(turn_text(tid, f"/stream {n} 8", 10_000 + i))
        results = [json.loads(await worker.line()) for worker in workers]
        elapsed: float = max(r["end"] for r in results) - t0
        frames: int = sum(r["frames"] for r in results)
        if frames < threads * k * n:
            raise RuntimeError(f"spread: {frames} frames < {threads * k * n}")
        await close_all(owners)
    return threads * k * n / elapsed


# --- fan-out to another node vs the same node ---------------------------------------------


async def fanout_rate(owner_url: str, sub_url: str, k: int, n: int) -> float:
    async with trio.open_nursery() as nursery:
        (owner,) = await open_clients(nursery, owner_url, 1)
        thread_id = await new_thread(owner)
        subs = await open_clients(nursery, sub_url, k)
        for rpc in subs:
            await rpc.call("thread/resume", {"threadId": thread_id})
        await owner.call("thread/unsubscribe", {"threadId": thread_id})
        counts = [0] * k
        t0 = time.perf_counter()
        async with trio.open_nursery() as readers:
            for i, rpc in enumerate(subs):
                readers.start_soon(count_until_end, rpc, counts, i)
            await owner.ws.send_message(turn_text(thread_id, f"/stream {n} 8", 99_999))
        elapsed = time.perf_counter() - t0
        if min(counts) < n:
            raise RuntimeError(f"fan-out: a subscriber got {min(counts)} frames < {n}")
        await close_all([owner, *subs])
    return k * n / elapsed


# --- owner -> remote subscriber latency -----------------------------------------------------


async def arrivals(
    rpc: Rpc, times: dict[int, float], turns: int, done: trio.MemorySendChannel[None]
) -> None:
    async with done:
        for _ in range(turns):
            while True:
                text = await rpc.ws.get_message()
                now = time.perf_counter()
                if '"seq":' in text:
                    times[json.loads(text)["seq"]] = now
                if END in text:
                    await done.send(None)
                    break


async def remote_latency(owner_url: str, remote_url: str, turns: int) -> list[float]:
    script = "/say one two three four five six seven eight"
    caps = {"appserverEventSeq": True}
    async with trio.open_nursery() as nursery:
        local, remote = [Rpc(await connect(nursery, u)) for u in (owner_url, remote_url)]
        for rpc in (local, remote):
            await rpc.call(
                "initialize", {"clientInfo": {"name": "lat", "version": "0"}, "capabilities": caps}
            )
            await rpc.ws.send_message('{"jsonrpc":"2.0","method":"initialized"}')
        thread_id = await new_thread(local)
        await remote.call("thread/resume", {"threadId": thread_id})
        (driver,) = await open_clients(nursery, owner_url, 1)
        here: dict[int, float] = {}
        there: dict[int, float] = {}
        send, receive = trio.open_memory_channel[None](0)
        async with trio.open_nursery() as readers, receive:
            readers.start_soon(arrivals, local, here, turns, send.clone())
            readers.start_soon(arrivals, remote, there, turns, send)
            for _ in range(turns):  # one turn at a time, both readers done with it
                await driver.call("turn/start", turn_params(thread_id, script))
                await receive.receive()
                await receive.receive()
        await close_all([local, remote, driver])
    return [(there[s] - here[s]) * 1000 for s in here if s in there]


# --- turns/s -------------------------------------------------------------------------------


async def run_turns(rpc: Rpc, thread_id: str, count: int) -> None:
    for i in range(count):
        await rpc.ws.send_message(turn_text(thread_id, "/say hi", 50_000 + i))
        await rpc.wait_for(END)


async def turns_rate(url: str, total: int, clients: int = 10) -> float:
    async with trio.open_nursery() as nursery:
        rpcs = await open_clients(nursery, url, clients)
        ids = [await new_thread(rpc) for rpc in rpcs]
        each = total // clients
        t0 = time.perf_counter()
        async with trio.open_nursery() as runners:
            for rpc, tid in zip(rpcs, ids, strict=True):
                runners.start_soon(run_turns, rpc, tid, each)
        elapsed = time.perf_counter() - t0
        await close_all(rpcs)
    return each * clients / elapsed


# --- failover ------------------------------------------------------------------------------


async def failover_seconds(database: Callable[[], str], lease: float, at_once: bool) -> float:
    """SIGKILL of the owner to the completion of a new turn started from the survivor:
    `at_once` sends turn/start right after the kill (retried while refused), else the
    client first waits for the thread's status change (the takeover)."""
    with nodes(database(), ["a", "b"], lease) as (a, b):
        async with trio.open_nursery() as nursery:
            (owner,) = await open_clients(nursery, a.url, 1)
            (survivor,) = await open_clients(nursery, b.url, 1)
            thread_id = await new_thread(owner)
            await survivor.call("thread/resume", {"threadId": thread_id})
            await owner.ws.send_message(turn_text(thread_id, "/sleep 60", 1))
            await survivor.wait_for('"turn/started"')
            a.proc.kill()
            t0 = time.perf_counter()
            if not at_once:  # the takeover's status change (active -> idle)
                while '"idle"' not in await survivor.wait_for('"thread/status/changed"'):
                    pass
            while True:  # until the survivor accepts a new turn ...
                answer = json.loads(
                    await survivor.call_raw("turn/start", turn_params(thread_id, "/say back"))
                )
                if "result" in answer:
                    break
                await trio.sleep(0.05)  # refused before the takeover: try again
            turn_id = answer["result"]["turn"]["id"]
            while turn_id not in await survivor.wait_for(END):  # ... and it has completed
                pass
            elapsed = time.perf_counter() - t0
            nursery.cancel_scope.cancel()
        a.proc.wait()
    return elapsed


# --- main ----------------------------------------------------------------------------------


def turn_params(thread_id: str, text: str) -> dict[str, object]:
    params: dict[str, object] = json.loads(turn_text(thread_id, text, 0))["params"]
    return params


def ratio_of(pairs: list[tuple[float, float]]) -> float:
    return median([x / y for x, y in pairs])


async def main_async(args: argparse.Namespace, database: Callable[[], str]) -> None:
    quick, rounds, only = args.quick, args.rounds, args.only
    if "spread" in only:
        threads, k, n = (4, 2, 300) if quick else (8, 4, 3000)
        with nodes(database(), ["a", "b"]) as (a, b):
            sides = {"1 node": [a.url], "2 nodes": [a.url, b.url]}
            rates: dict[str, list[float]] = {s: [] for s in sides}
            for r in range(rounds):
                for side in rotate(list(sides), r):
                    rates[side].append(await spread_rate(sides[side], threads, k, n))
                    print(f"  spread round {r + 1} {side:<8} {rates[side][-1]:12,.0f}/s")
        ratio = ratio_of(list(zip(rates["2 nodes"], rates["1 node"], strict=True)))
        report("cluster", f"spread T={threads} K={k}: 2 nodes vs 1", median(rates["2 nodes"]),
               "deliveries/s", baseline=median(rates["1 node"]), baseline_name="1 node",
               ratio=ratio, target=">= 1.3x", ok=ratio >= 1.3, samples=rates)  # fmt: skip
    if "remote" in only:
        k, n = (4, 500) if quick else (10, 5000)
        with nodes(database(), ["a", "b"]) as (a, b):
            where = {"same node": a.url, "other node": b.url}
            rates = {s: [] for s in where}
            for r in range(rounds):
                for side in rotate(list(where), r):
                    rates[side].append(await fanout_rate(a.url, where[side], k, n))
                    print(f"  fan-out round {r + 1} {side:<10} {rates[side][-1]:12,.0f}/s")
        ratio = ratio_of(list(zip(rates["other node"], rates["same node"], strict=True)))
        report("cluster", f"fan-out K={k} to another node vs same node",
               median(rates["other node"]), "deliveries/s", baseline=median(rates["same node"]),
               baseline_name="same node", ratio=ratio, target=">= 0.5x", ok=ratio >= 0.5,
               samples=rates)  # fmt: skip
    if "latency" in only:
        turns = 10 if quick else 100
        with nodes(database(), ["a", "b"]) as (a, b):
            lat = await remote_latency(a.url, b.url, turns)
        for name, q in (("p50", 0.5), ("p99", 0.99)):
            report("cluster", f"owner->remote subscriber extra latency {name}",
                   percentile(lat, q), "ms", events=len(lat))  # fmt: skip
    if "turns" in only:
        total = 100 if quick else 1000
        rates = {"postgresql": [], "sqlite": []}
        with nodes(database(), ["a"]) as (a,), sqlite_node() as lite:
            urls = {"postgresql": a.url, "sqlite": lite.url}
            for r in range(rounds):
                for side in rotate(list(urls), r):
                    rates[side].append(await turns_rate(urls[side], total))
                    print(f"  turns round {r + 1} {side:<10} {rates[side][-1]:8.1f}/s")
        ratio = ratio_of(list(zip(rates["postgresql"], rates["sqlite"], strict=True)))
        report("cluster", "short turns on PostgreSQL (cluster node) vs SQLite",
               median(rates["postgresql"]), "turns/s", baseline=median(rates["sqlite"]),
               baseline_name="sqlite", ratio=ratio, samples=rates)  # fmt: skip
    if "failover" in only:
        for at_once, how in ((False, "after the status change"), (True, "sent at once")):
            times = [await failover_seconds(database, args.lease, at_once) for _ in range(rounds)]
            report("cluster", f"failover SIGKILL -> new turn completed, {how} (lease "
                   f"{args.lease}s)", median(times), "s", samples=times)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 3)")
    parser.add_argument("--pg-url", help="an existing PostgreSQL database (else one is started)")
    parser.add_argument("--lease", type=float, default=1.0, help="lease seconds for failover")
    parser.add_argument("--only", default=",".join(PARTS), help=f"subset of {','.join(PARTS)}")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        trio.run(worker_main)
        return
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.only = set(args.only.split(","))
    with postgres(args.pg_url) as database:
        trio.run(main_async, args, database)


if __name__ == "__main__":
    main()
