"""Store: short-turn throughput, `thread/list` at 100k threads, cold/warm `thread/resume`.

All against a real appserver process with `--data-dir` in a temporary directory (SQLite;
with `--postgres URL` also on `--store URL`, a PostgreSQL database):

- turns/s: 5,000 `/say hi` turns spread over 10 connections, one thread each, every
  connection running its turns back to back (turn/start, wait for turn/completed).
  Reference in the same run, alternating rounds: the same on `--in-memory`.
- thread/list: 100k threads bulk-inserted with `store_list.py`'s generator, then the
  server is started on that store; first pages, consecutive pages following nextCursor,
  and a searchTerm page, timed as websocket round trips (median, p99).
- thread/resume: a thread of 2,000 items (100 turns of 19 `/say` lines + the user
  message), unsubscribed so it unloads, then timed cold resumes (each after another
  unsubscribe + `thread/closed`) and warm rejoins (another connection keeps it loaded).
- With `--postgres URL` (a database the benchmark may fill): short turns on `--store URL`
  as a third side, and in-process store writes/s (`PostgresStore`: start_turn, 8 put_item,
  finish_turn per turn, 4 threads at once): threads unfenced, and fenced with a matching
  lease row (the cluster's per-write lease check), alternating.

    python benchmarks/store.py [--quick] [--turns N] [--list-threads N] [--rounds R]
                               [--postgres URL] [--pg-writes N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import random
import tempfile
import time
from typing import Any

import attrs
import trio
from _common import (
    Rpc,
    appserver_argv,
    close_all,
    median,
    open_clients,
    percentile,
    report,
    rotate,
    running,
)
from store_list import bulk_insert, make_records

from appserver.store import open_sqlite_store

CLIENTS = 10
SAY_LINES = 19
PG_THREADS = 4
PG_ITEMS = 8


def turn_params(thread_id: str, text: str) -> dict[str, object]:
    return {"threadId": thread_id, "input": [{"type": "text", "text": text}]}


async def run_turns(rpc: Rpc, thread_id: str, count: int, text: str = "/say hi") -> None:
    for _ in range(count):
        await rpc.call_raw("turn/start", turn_params(thread_id, text))
        await rpc.wait_for('"turn/completed"')


async def turns_per_second(url: str, total: int) -> float:
    async with trio.open_nursery() as nursery:
        clients = await open_clients(nursery, url, CLIENTS)
        threads = [(await rpc.call("thread/start"))["thread"]["id"] for rpc in clients]
        per_client = total // CLIENTS
        t0 = time.perf_counter()
        async with trio.open_nursery() as workers:
            for rpc, thread_id in zip(clients, threads, strict=True):
                workers.start_soon(run_turns, rpc, thread_id, per_client)
        elapsed = time.perf_counter() - t0
        await close_all(clients)
    return per_client * CLIENTS / elapsed


async def timed_call(rpc: Rpc, method: str, params: object) -> tuple[float, str]:
    t0 = time.perf_counter()
    text = await rpc.call_raw(method, params)
    return (time.perf_counter() - t0) * 1000, text


async def resume_latency(
    url: str, turns: int, samples: int
) -> tuple[int, list[float], list[float]]:
    async with trio.open_nursery() as nursery:
        a, b = await open_clients(nursery, url, 2)
        thread_id = (await a.call("thread/start"))["thread"]["id"]
        script = "\n".join(f"/say item {j} of a long enough thread" for j in range(SAY_LINES))
        await run_turns(a, thread_id, turns, script)
        cold: list[float] = []
        items = 0
        for i in range(samples):
            result = await a.call("thread/unsubscribe", {"threadId": thread_id})
            assert result["status"] == "unsubscribed", result
            while thread_id not in await a.wait_for('"thread/closed"'):
                pass
            ms, text = await timed_call(a, "thread/resume", {"threadId": thread_id})
            cold.append(ms)
            if i == 0:
                turns_ = json.loads(text)["result"]["thread"]["turns"]
                items = sum(len(turn["items"]) for turn in turns_)
        await b.call("thread/resume", {"threadId": thread_id})  # keeps it loaded
        warm = []
        for _ in range(samples):
            warm.append((await timed_call(a, "thread/resume", {"threadId": thread_id}))[0])
        await close_all([a, b])
    return items, cold, warm


async def list_latency(url: str, samples: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"first page": [], "next pages": [], "searchTerm page": []}
    async with trio.open_nursery() as nursery:
        (rpc,) = await open_clients(nursery, url, 1)
        for _ in range(samples):
            out["first page"].append((await timed_call(rpc, "thread/list", {}))[0])
            search = {"searchTerm": "PARSER"}
            out["searchTerm page"].append((await timed_call(rpc, "thread/list", search))[0])
        cursor = None
        for _ in range(samples):
            ms, text = await timed_call(rpc, "thread/list", {"cursor": cursor} if cursor else {})
            out["next pages"].append(ms)
            cursor = json.loads(text)["result"]["nextCursor"]
        await close_all([rpc])
    return out


async def pg_writes_per_second(url: str, turns: int, round_no: int, fenced: bool) -> float:
    """Store writes/s of ``turns`` short turns on 4 threads at once, in this process."""
    from appserver.store.postgres import open_postgres_store

    async with open_postgres_store(url, node_id="bench", pool_max=PG_THREADS) as store:
        run = random.getrandbits(32)
        ids = [f"bench-{run:08x}-{round_no}-{int(fenced)}-{n}" for n in range(PG_THREADS)]
        for n, thread_id in enumerate(ids):
            now = int(time.time())
            record = make_records(1, random.Random(n))[0]
            await store.create_thread(attrs.evolve(record, id=thread_id, updated_at=now))
        if fenced:
            if not hasattr(store, "fence"):
                return float("nan")  # a store without fencing (an older tree)

            def leases(conn: Any) -> None:
                for thread_id in ids:
                    conn.execute(
                        "INSERT INTO thread_leases (thread_id, node_id, session, epoch, "
                        "expires_at) VALUES (%s, 'bench', 's', 1, now() + interval '1 hour')",
                        (thread_id,),
                    )

            await store.run_write(leases)
            for thread_id in ids:
                store.fence(thread_id, "bench", 1)

        async def one_thread(thread_id: str) -> None:
            for t in range(turns // PG_THREADS):
                turn_id = f"u{t}"
                await store.start_turn(thread_id, turn_id, updated_at=int(time.time()))
                for i in range(PG_ITEMS):
                    item = {"type": "agentMessage", "id": f"i{i}", "text": "hi " * 20}
                    await store.put_item(thread_id, turn_id, item)
                await store.finish_turn(
                    thread_id, turn_id, status="completed", error=None, updated_at=int(time.time())
                )

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for thread_id in ids:
                nursery.start_soon(one_thread, thread_id)
        elapsed = time.perf_counter() - t0
    return (turns // PG_THREADS) * PG_THREADS * (PG_ITEMS + 2) / elapsed


async def pg_store_writes(url: str, turns: int, rounds: int) -> None:
    rates: dict[str, list[float]] = {"unfenced": [], "fenced": []}
    for round_no in range(rounds):
        for side in rotate(list(rates), round_no):
            rate = await pg_writes_per_second(url, turns, round_no, side == "fenced")
            rates[side].append(rate)
            print(f"  round {round_no + 1} PostgresStore {side:<8} {rate:8.1f} writes/s")
    unfenced, fenced = median(rates["unfenced"]), median(rates["fenced"])
    report(
        "store",
        f"PostgresStore writes, {PG_THREADS} threads (unfenced)",
        unfenced,
        "writes/s",
        rounds=rounds,
    )
    report(
        "store",
        f"PostgresStore writes, {PG_THREADS} threads (fenced)",
        fenced,
        "writes/s",
        baseline=unfenced,
        baseline_name="unfenced",
        ratio=fenced / unfenced,
    )


def ms_row(values: list[float]) -> str:
    return f"median {median(values):7.2f} ms  p99 {percentile(values, 0.99):7.2f} ms"


async def main_async(
    turns: int,
    rounds: int,
    list_threads: int,
    resume_turns: int,
    samples: int,
    postgres: str | None = None,
    pg_writes: int = 2_000,
) -> None:
    if postgres:
        await pg_store_writes(postgres, pg_writes, rounds)
    with tempfile.TemporaryDirectory(prefix="appserver-bench-") as tmp:
        data = pathlib.Path(tmp) / "turns"
        sides = ["sqlite", "in-memory"] + (["postgresql"] if postgres else [])
        argv = {
            "sqlite": appserver_argv("--data-dir", str(data)),
            "in-memory": appserver_argv("--in-memory"),
            "postgresql": appserver_argv("--store", postgres or ""),
        }
        rates: dict[str, list[float]] = {s: [] for s in sides}
        with contextlib.ExitStack() as stack:
            sq = stack.enter_context(running("sqlite", argv["sqlite"]))
            mem = stack.enter_context(running("mem", argv["in-memory"]))
            urls = {"sqlite": sq.url, "in-memory": mem.url}
            if postgres:
                urls["postgresql"] = stack.enter_context(running("pg", argv["postgresql"])).url
            for round_no in range(rounds):
                for side in rotate(sides, round_no):
                    rate = await turns_per_second(urls[side], turns // rounds)
                    rates[side].append(rate)
                    print(f"  round {round_no + 1} {side:<10} {rate:8.1f} turns/s")
            items, cold, warm = await resume_latency(sq.url, resume_turns, samples)
        print(f"  resume of {items} items: cold {ms_row(cold)};  warm {ms_row(warm)}")

        listed = pathlib.Path(tmp) / "list"
        listed.mkdir()
        db = listed / "appserver.sqlite3"
        async with open_sqlite_store(db):
            pass  # creates the schema
        bulk_insert(db, make_records(list_threads, random.Random(1)))
        with running("list", appserver_argv("--data-dir", str(listed))) as lst:
            pages = await list_latency(lst.url, samples * 5)
        for label, values in pages.items():
            print(f"  thread/list {label:<16} at {list_threads} threads: {ms_row(values)}")

    sqlite_rate, mem_rate = median(rates["sqlite"]), median(rates["in-memory"])
    report(
        "store",
        f"short turns, {CLIENTS} clients (SQLite)",
        sqlite_rate,
        "turns/s",
        baseline=mem_rate,
        baseline_name="--in-memory",
        ratio=sqlite_rate / mem_rate,
        target=">= 300 turns/s",
        ok=sqlite_rate >= 300,
        turns=turns,
        rounds=rounds,
    )
    if postgres:
        pg_rate = median(rates["postgresql"])
        report(
            "store",
            f"short turns, {CLIENTS} clients (PostgreSQL)",
            pg_rate,
            "turns/s",
            baseline=sqlite_rate,
            baseline_name="SQLite",
            ratio=pg_rate / sqlite_rate,
            turns=turns,
            rounds=rounds,
        )
    for label, values in pages.items():
        value = median(values)
        first = label == "first page"
        report(
            "store",
            f"thread/list {label} @ {list_threads // 1000}k",
            value,
            "ms",
            p99=percentile(values, 0.99),
            target="< 10 ms" if first or label == "next pages" else "",
            ok=value < 10 if first or label == "next pages" else None,
        )
    for label, values in (("cold resume", cold), ("warm rejoin", warm)):
        value = median(values)
        report(
            "store",
            f"thread/resume {label} ({items} items)",
            value,
            "ms",
            p99=percentile(values, 0.99),
            target="< 150 ms" if label == "cold resume" else "",
            ok=value < 150 if label == "cold resume" else None,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round")
    parser.add_argument("--turns", type=int, help="short turns per side (default 5000)")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 2)")
    parser.add_argument("--list-threads", type=int, help="stored threads (default 100000)")
    parser.add_argument("--resume-turns", type=int, help="turns of 20 items (default 100)")
    parser.add_argument("--samples", type=int, help="timed resumes; x5 list pages (default 20)")
    parser.add_argument("--postgres", metavar="URL", help="also on this PostgreSQL database")
    parser.add_argument("--pg-writes", type=int, help="turns of store writes (default 2000)")
    args = parser.parse_args()
    quick = args.quick
    trio.run(
        main_async,
        args.turns or (100 if quick else 5_000),
        args.rounds or (1 if quick else 2),
        args.list_threads or (2_000 if quick else 100_000),
        args.resume_turns or (5 if quick else 100),
        args.samples or (3 if quick else 20),
        args.postgres,
        args.pg_writes or (100 if quick else 2_000),
    )


if __name__ == "__main__":
    main()
