"""thread/list latency of the SQLite store.

Fills a temporary store with N threads (default 100k; ``--quick``: 2k) by one bulk
insert, then times ``list_threads`` pages (limit 25): first pages and deep pages (a
cursor at a random depth), both sort keys, with ``searchTerm`` / ``cwd`` /
``modelProviders`` filters, and updated_at pages whose cursor predates 1,000 updates
(the history merge). Prints median and p99 per page in milliseconds.

    python benchmarks/store_list.py [--quick] [--threads N] [--samples N]
"""

from __future__ import annotations

import argparse
import gc
import pathlib
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable

import attrs
import trio

from appserver.store import ListQuery, SortKey, SqliteStore, ThreadRecord, open_sqlite_store
from appserver.store.cursor import Cursor, decode_cursor, dump_json, encode_cursor
from appserver.store.sqlite import INSERT_SETTINGS_SQL, INSERT_THREAD_SQL, thread_params

WORDS = ("fix", "parser", "tests", "build", "deploy", "refactor", "docs", "bug", "cache", "list")
LIMIT = 25


def make_records(count: int, rng: random.Random) -> list[ThreadRecord]:
    start = 1_700_000_000
    records = []
    for n in range(count):
        created = start + n * 30 + rng.randrange(-5, 5)  # ~1 month per 100k, some ties
        words = " ".join(rng.choice(WORDS) for _ in range(6))
        if n % 1000 == 0:
            words += " zanzibar"  # a rare search term (0.1%)
        records.append(
            ThreadRecord(
                id=f"{created:012x}-7{n:03x}-8{rng.getrandbits(60):015x}",
                preview=f"{words} #{n}",
                name=f"Thread {n}" if n % 20 == 0 else None,
                model_provider=rng.choice(["builtin", "builtin", "openai", "other"]),
                model="script",
                cwd=f"/home/user/project{rng.randrange(50)}",
                created_at=created,
                updated_at=created + rng.randrange(0, 86_400 * 3),
                archived=rng.random() < 0.1,
                settings={
                    "approvalPolicy": "on-request",
                    "sandbox": "workspace-write",
                    # some threads carry long instructions (overflow pages)
                    "developerInstructions": "Be terse. " * 300 if n % 5 == 0 else None,
                },
            )
        )
    return records


def bulk_insert(path: pathlib.Path, records: list[ThreadRecord]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.executemany(INSERT_THREAD_SQL, [thread_params(r) for r in records])
        settings = [(r.id, dump_json(r.settings)) for r in records]
        conn.executemany(INSERT_SETTINGS_SQL, settings)
        conn.execute("COMMIT")
    finally:
        conn.close()


async def timed(samples: int, make_query: Callable[[], ListQuery], store: SqliteStore) -> str:
    times: list[float] = []
    rows = 0
    for _ in range(samples):
        query = make_query()
        started = time.perf_counter()
        page, _ = await store.list_threads(query)
        times.append((time.perf_counter() - started) * 1000)
        rows += len(page)
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    median = statistics.median(times)
    return f"median {median:7.2f} ms   p99 {p99:7.2f} ms   rows/page {rows / samples:5.1f}"


async def run(count: int, samples: int) -> None:
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "appserver.sqlite3"
        async with open_sqlite_store(path):
            pass  # create the schema
        records = make_records(count, rng)
        started = time.perf_counter()
        bulk_insert(path, records)
        print(f"{count} threads inserted in {time.perf_counter() - started:.2f} s")
        async with open_sqlite_store(path) as store:
            _, old_cursor = await store.list_threads(ListQuery(limit=LIMIT, sort_key="updated_at"))
            live = [r for r in records if not r.archived]
            for _ in range(1000):  # updated_at history for cursors issued before these
                thread = rng.choice(live)
                thread.updated_at += 86_400 * 30
                await store.update_thread(thread.id, updated_at=thread.updated_at)
            (snapshot,) = store._reader.execute(  # type: ignore[union-attr]
                "SELECT change_seq FROM store_state"
            ).fetchone()

            old = decode_cursor(old_cursor, "updated_at").snapshot if old_cursor else 0

            def deep(base: ListQuery, at: int = snapshot) -> Callable[[], ListQuery]:
                def make() -> ListQuery:
                    record = rng.choice(records)  # a cursor at a random depth
                    key = base.sort_key
                    value = record.created_at if key == "created_at" else record.updated_at
                    cursor = Cursor(sort_key=key, key=value, id=record.id, snapshot=at)
                    return attrs.evolve(base, cursor=encode_cursor(cursor))

                return make

            def first(base: ListQuery) -> Callable[[], ListQuery]:
                return lambda: base

            cwd = "/home/user/project7"
            cases: list[tuple[str, Callable[[], ListQuery]]] = []
            keys: tuple[SortKey, ...] = ("created_at", "updated_at")
            for key in keys:
                q = ListQuery(limit=LIMIT, sort_key=key)
                cases += [
                    (f"{key:<10} first page", first(q)),
                    (f"{key:<10} deep page", deep(q)),
                    (f"{key:<10} first, cwd", first(attrs.evolve(q, cwd=cwd))),
                    (f"{key:<10} deep, cwd", deep(attrs.evolve(q, cwd=cwd))),
                    (f"{key:<10} first, searchTerm", first(attrs.evolve(q, search_term="PARSER"))),
                    (f"{key:<10} deep, searchTerm", deep(attrs.evolve(q, search_term="PARSER"))),
                    (
                        f"{key:<10} deep, searchTerm+cwd",
                        deep(attrs.evolve(q, search_term="fix", cwd=cwd)),
                    ),
                    (
                        f"{key:<10} deep, modelProviders",
                        deep(attrs.evolve(q, model_providers=("openai",))),
                    ),
                    (f"{key:<10} first, archived", first(attrs.evolve(q, archived=True))),
                    (
                        f"{key:<10} first, rare searchTerm (0.1%)",
                        first(attrs.evolve(q, search_term="zanzibar")),
                    ),
                ]
            updated = ListQuery(limit=LIMIT, sort_key="updated_at")
            cases.append(("updated_at deep, cursor before 1k updates", deep(updated, old)))
            gc.collect()
            gc.freeze()  # keep the benchmark's own 100k records out of GC pauses
            print(f"thread/list, limit {LIMIT}, {samples} samples each:")
            for label, make_query in cases:
                print(f"  {label:<44} {await timed(samples, make_query, store)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2k threads, fewer samples")
    parser.add_argument("--threads", type=int, help="number of threads (default 100000)")
    parser.add_argument("--samples", type=int, help="pages timed per case (default 200)")
    args = parser.parse_args()
    count = args.threads or (2_000 if args.quick else 100_000)
    samples = args.samples or (50 if args.quick else 200)
    trio.run(run, count, samples)


if __name__ == "__main__":
    main()
