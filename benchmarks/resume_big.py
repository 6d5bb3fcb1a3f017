"""Resume and page big threads (issue 14's figures), in a SQLite data dir.

- A thread of 4 turns x 2,500 `/say` items, made by real turns; after a restart,
  `thread/resume` with and without `excludeTurns` (median of 5, each followed by an
  unsubscribe that unloads it) and a `thread/turns/list` page (limit 25, median of 5)
  with each `itemsView`: notLoaded, summary (the default), full.
- A thread of 10,000 short turns (user message + answer), written through the store
  API (as real turns store them, without running 10,000 agents), then the default
  `thread/turns/list` page and `thread/resume` with `excludeTurns`.

Targets (issue 14): resume with excludeTurns under 20 ms at 10,000 items; a turns/list
page under 5 ms at 10,000 turns, default itemsView included.
In process: `python benchmarks/resume_big.py`.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from appserver.client import Client
from appserver.server import STORE_FILE, ServerConfig, open_server
from appserver.store.sqlite import open_sqlite_store

TURNS, ITEMS_PER_TURN, ROUNDS = 4, 2500, 5
MANY_TURNS = 10_000


async def median_ms(action: Callable[[], Awaitable[Any]], rounds: int = ROUNDS) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        await action()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


async def resume_ms(client: Client, thread_id: str, exclude: bool) -> tuple[float, int]:
    times, items = [], 0
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        result = await client.request(
            "thread/resume", {"threadId": thread_id, "excludeTurns": exclude}
        )
        times.append((time.perf_counter() - t0) * 1000)
        items = sum(len(turn["items"]) for turn in result["thread"]["turns"])
        await client.request("thread/unsubscribe", {"threadId": thread_id})
        await client.next_notification("thread/closed")
    return statistics.median(times), items


async def page_ms(client: Client, thread_id: str, view: str | None) -> float:
    params: dict[str, Any] = {"threadId": thread_id, "limit": 25}
    if view is not None:
        params["itemsView"] = view
    return await median_ms(lambda: client.request("thread/turns/list", params))


async def many_turns(data_dir: Path, thread_id: str) -> None:
    """MANY_TURNS completed turns of two items each, stored as real turns store them."""
    async with open_sqlite_store(data_dir / STORE_FILE) as store:
        now = int(time.time())
        for n in range(MANY_TURNS):
            turn_id = str(uuid.uuid4())
            await store.start_turn(thread_id, turn_id, updated_at=now, started_at_ms=now * 1000)
            user = {
                "type": "userMessage",
                "id": str(uuid.uuid4()),
                "content": [{"type": "text", "text": f"/say turn {n}", "textElements": []}],
            }
            answer = {"type": "agentMessage", "id": str(uuid.uuid4()), "text": f"turn {n}"}
            await store.put_item(thread_id, turn_id, user)
            await store.put_item(thread_id, turn_id, answer)
            await store.finish_turn(
                thread_id,
                turn_id,
                status="completed",
                error=None,
                updated_at=now,
                completed_at_ms=now * 1000,
            )


async def main() -> None:
    config = ServerConfig(data_dir=Path(tempfile.mkdtemp(prefix="resume-big-")))
    async with open_server(config) as server, server.connect() as client:
        await client.initialize("bench")
        started = await client.request("thread/start", {"approvalPolicy": "never"})
        big_id = started["thread"]["id"]
        for _ in range(TURNS):
            text = "\n".join("/say x" for _ in range(ITEMS_PER_TURN))
            params = {"threadId": big_id, "input": [{"type": "text", "text": text}]}
            await client.request("turn/start", params)
            await client.next_notification("turn/completed")
        many_id = (await client.request("thread/start", {}))["thread"]["id"]
    await many_turns(config.data_dir, many_id)
    async with open_server(config) as server, server.connect() as client:
        await client.initialize("bench")
        print(f"thread of {TURNS} turns x {ITEMS_PER_TURN} items:")
        for exclude in (True, False):
            ms, items = await resume_ms(client, big_id, exclude)
            print(
                f"  thread/resume excludeTurns={exclude}: median {ms:.1f} ms "
                f"({items} items in the response)"
            )
        for view in ("notLoaded", "summary", "full"):
            ms = await page_ms(client, big_id, view)
            print(f"  thread/turns/list page, itemsView={view}: median {ms:.2f} ms")
        print(f"thread of {MANY_TURNS} turns:")
        ms = await page_ms(client, many_id, None)
        print(f"  thread/turns/list page (25 turns, default itemsView): median {ms:.2f} ms")
        ms, _ = await resume_ms(client, many_id, True)
        print(f"  thread/resume excludeTurns=True: median {ms:.1f} ms")


if __name__ == "__main__":
    trio.run(main)
