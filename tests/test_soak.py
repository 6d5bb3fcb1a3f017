"""Soak (PROTOCOL.md §8, ARCHITECTURE.md invariant 6): thousands of connect / initialize /
thread/start / thread/resume / thread/unsubscribe / disconnect cycles from several
concurrent clients against one server with a real SQLite store. Afterwards the process RSS
has settled, the live Python object count has not grown with the cycles,
`thread/loaded/list` holds exactly the threads left without an unsubscribe, and
`server.statistics()` shows no leaked connection, request, subscription, pending request,
turn or timer."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from reliability_support import TIMEOUT, rss_bytes, text_input

from appserver.client import Client
from appserver.server import Server, ServerConfig

WORKERS = 8
ABANDON_EVERY = 7  # these cycles disconnect without unsubscribing: the thread stays loaded
TURN_EVERY = 10  # these cycles also run a turn
RSS_TOLERANCE = 24 * 1024 * 1024
# gc-tracked objects may grow by this much per thread left loaded, plus a fixed slack.
OBJECTS_PER_LOADED_THREAD = 60
OBJECTS_SLACK = 1000

FIGURES: dict[str, Any] = {}


@pytest.fixture
def server_config(tmp_path: Path) -> ServerConfig:
    return ServerConfig(data_dir=tmp_path / "data")


async def cycle(server: Server, i: int, abandoned: set[str], closed: set[str]) -> None:
    async with server.connect() as client:
        await client.initialize(f"soak-{i}", opt_out=["thread/started", "thread/status/changed"])
        started = await client.request("thread/start")
        thread_id = started["thread"]["id"]
        resumed = await client.request("thread/resume", {"threadId": thread_id})
        assert resumed["thread"]["id"] == thread_id
        if i % TURN_EVERY == 0:
            turn = await client.request(
                "turn/start", {"threadId": thread_id, "input": text_input(f"/say soak {i}")}
            )
            done = await client.next_notification(
                "turn/completed", where=lambda p: p["turn"]["id"] == turn["turn"]["id"]
            )
            assert done["params"]["turn"]["status"] == "completed"
        if i % ABANDON_EVERY == 0:
            abandoned.add(thread_id)
            return
        status = await client.request("thread/unsubscribe", {"threadId": thread_id})
        assert status == {"status": "unsubscribed"}
        closed.add(thread_id)


async def run_cycles(server: Server, start: int, count: int, abandoned: set[str]) -> set[str]:
    closed: set[str] = set()

    async def worker(k: int) -> None:
        for i in range(start + k, start + count, WORKERS):
            await cycle(server, i, abandoned, closed)

    with trio.fail_after(TIMEOUT * 10):
        async with trio.open_nursery() as nursery:
            for k in range(WORKERS):
                nursery.start_soon(worker, k)
    return closed


async def wait_closed(observer: Client, expected: set[str]) -> None:
    """Every unsubscribed thread's `thread/closed` broadcast reached the observer."""
    with trio.fail_after(TIMEOUT):
        while expected:
            note = await observer.next_notification(
                "thread/closed", where=lambda p: p["threadId"] in expected
            )
            expected.discard(note["params"]["threadId"])


async def loaded_list(client: Client) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor is not None:
            params["cursor"] = cursor
        page = await client.request("thread/loaded/list", params)
        ids += page["data"]
        cursor = page["nextCursor"]
        if cursor is None:
            return ids


async def soak(server: Server, cycles: int) -> None:
    warmup = max(50, cycles // 10)
    abandoned: set[str] = set()
    async with server.connect() as observer:
        await observer.initialize("observer", opt_out=["thread/started", "thread/status/changed"])
        await wait_closed(observer, await run_cycles(server, 0, warmup, abandoned))
        observer.drain_notifications()
        gc.collect()
        rss_before, objects_before = rss_bytes(), len(gc.get_objects())
        loaded_before = len(abandoned)

        await wait_closed(observer, await run_cycles(server, warmup, cycles, abandoned))
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        observer.drain_notifications()
        gc.collect()
        rss_after, objects_after = rss_bytes(), len(gc.get_objects())

        assert sorted(await loaded_list(observer)) == sorted(abandoned)
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        stats = server.statistics()
        expected = {
            "connections": 1,  # the observer
            "inflight": 0,
            "loaded": len(abandoned),
            "running_turns": 0,
            "subscriptions": 0,
            "subscribers_indexed": 0,
            "pending_requests": 0,
            "idle_timers": len(abandoned),
        }
        assert {k: stats[k] for k in expected} == expected, stats
    await trio.testing.wait_all_tasks_blocked(cushion=0.05)
    assert server.statistics()["connections"] == 0

    FIGURES.update(
        cycles=cycles + warmup,
        workers=WORKERS,
        rss_before_mb=round(rss_before / 2**20, 1),
        rss_after_mb=round(rss_after / 2**20, 1),
        objects_before=objects_before,
        objects_after=objects_after,
        loaded_left=len(abandoned),
    )
    print(f"\n[soak] {FIGURES}")
    assert rss_after - rss_before <= RSS_TOLERANCE, FIGURES
    allowed = OBJECTS_PER_LOADED_THREAD * (len(abandoned) - loaded_before) + OBJECTS_SLACK
    assert objects_after - objects_before <= allowed, FIGURES


async def test_soak_connect_cycles(server: Server) -> None:
    await soak(server, 300)


@pytest.mark.slow
async def test_soak_connect_cycles_long(server: Server) -> None:
    await soak(server, 5000)
