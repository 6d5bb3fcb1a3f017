"""Resume and page a big thread (issue 14's figures): one thread of 4 turns x 2,500 `/say`
items in a SQLite data dir, then, after a restart, `thread/resume` with and without
`excludeTurns` (median of 5, each followed by an unsubscribe that unloads it) and one
`thread/turns/list` page. In process: `python benchmarks/resume_big.py`."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import trio

from appserver.server import ServerConfig, open_server

TURNS, ITEMS_PER_TURN, ROUNDS = 4, 2500, 5


async def main() -> None:
    config = ServerConfig(data_dir=Path(tempfile.mkdtemp(prefix="resume-big-")))
    async with open_server(config) as server, server.connect() as client:
        await client.initialize("bench")
        started = await client.request("thread/start", {"approvalPolicy": "never"})
        thread_id = started["thread"]["id"]
        for _ in range(TURNS):
            text = "\n".join("/say x" for _ in range(ITEMS_PER_TURN))
            params = {"threadId": thread_id, "input": [{"type": "text", "text": text}]}
            await client.request("turn/start", params)
            await client.next_notification("turn/completed")
    async with open_server(config) as server, server.connect() as client:
        await client.initialize("bench")
        for exclude in (True, False):
            times = []
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                result = await client.request(
                    "thread/resume", {"threadId": thread_id, "excludeTurns": exclude}
                )
                times.append((time.perf_counter() - t0) * 1000)
                await client.request("thread/unsubscribe", {"threadId": thread_id})
                await client.next_notification("thread/closed")
            items = sum(len(turn["items"]) for turn in result["thread"]["turns"])
            print(
                f"thread/resume excludeTurns={exclude}: median {statistics.median(times):.1f} ms "
                f"({items} items in the response)"
            )
        t0 = time.perf_counter()
        await client.request("thread/turns/list", {"threadId": thread_id, "limit": 25})
        print(f"thread/turns/list page: {(time.perf_counter() - t0) * 1000:.2f} ms")


if __name__ == "__main__":
    trio.run(main)
