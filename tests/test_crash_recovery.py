"""Crash recovery (PROTOCOL.md §8.6, §8.7): a real server process is killed with SIGKILL at
random points while several websocket clients run turns (`/run`, `/write` with
approvalPolicy never, `/stream`, ...). After each restart on the same --data-dir: every turn
a client saw `turn/completed` for is stored with that status and every item the client saw
`item/completed` for is stored exactly as sent; `/write` files hold what was reported;
turns that were running read `interrupted`; `PRAGMA integrity_check` is ok; the restarted
server serves new turns on the old threads."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio_websocket
from reliability_support import TIMEOUT, CliProcess, cli_server, integrity_check, text_input

from appserver.client import ClientError, ServerRequest, connect_websocket

CLIENTS = 3

# Figures for docs/reliability.md (printed with -s).
FIGURES: dict[str, int] = {}


@attrs.define
class Ledger:
    """What the clients saw before the kills, across every round."""

    threads: set[str] = attrs.Factory(set)
    started: dict[str, tuple[str, str]] = attrs.Factory(dict)  # turn -> (thread, script)
    completed: dict[str, dict[str, Any]] = attrs.Factory(dict)  # turn -> turn/completed turn
    items: dict[str, dict[str, dict[str, Any]]] = attrs.Factory(dict)  # turn -> id -> item
    writes: dict[str, str] = attrs.Factory(dict)  # file name -> content of a completed write
    kills: int = 0


def script_for(rng: random.Random, n: int) -> str:
    return rng.choice(
        [
            f"/run echo run-{n}",
            f"/write f-{n}.txt content-{n}",
            "/stream 3000 16",
            f"/say hello number {n}",
            f"line {n}\n/think about {n}\n/sleep 0.05\n/say done {n}",
            f"/run echo a-{n} && echo b-{n}",
            f"/write f-{n}.txt first-{n}\n/run cat f-{n}.txt",
        ]
    )


def is_turn(turn_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda p: bool(p["turn"]["id"] == turn_id)


async def worker(
    url: str, cwd: Path, ledger: Ledger, rng: random.Random, counter: list[int]
) -> None:
    try:
        async with connect_websocket(url) as client:
            await client.initialize("crash-client")
            started = await client.request(
                "thread/start", {"cwd": str(cwd), "approvalPolicy": "never"}
            )
            thread_id = started["thread"]["id"]
            ledger.threads.add(thread_id)
            while True:
                counter[0] += 1
                n = counter[0]
                script = script_for(rng, n)
                result = await client.request(
                    "turn/start", {"threadId": thread_id, "input": text_input(script)}
                )
                turn_id = result["turn"]["id"]
                ledger.started[turn_id] = (thread_id, script)
                # Taken in order as they come (a `next_notification(where=...)` rescans
                # the whole buffer on each arrival: quadratic in a /stream's deltas);
                # entered in the ledger only once the turn is seen completed.
                items: dict[str, dict[str, Any]] = {}
                async for note in client:
                    assert not isinstance(note, ServerRequest), note  # approvalPolicy never
                    params = note.get("params") or {}
                    if note.get("method") == "item/completed" and params["turnId"] == turn_id:
                        items[params["item"]["id"]] = params["item"]
                    elif note.get("method") == "turn/completed" and is_turn(turn_id)(params):
                        break
                else:
                    return  # the connection closed under us: the server was killed
                ledger.completed[turn_id] = params["turn"]
                for item in items.values():
                    ledger.items.setdefault(turn_id, {})[item["id"]] = item
                    if item["type"] == "fileChange" and item["status"] == "completed":
                        ledger.writes[f"f-{n}.txt"] = script.split(" ", 2)[2].split("\n")[0]
    except* (ClientError, trio_websocket.ConnectionClosed, trio.BrokenResourceError, OSError):
        pass  # the server was killed under us


async def run_and_kill(server: CliProcess, cwd: Path, ledger: Ledger, rng: random.Random) -> None:
    counter = [rng.randrange(10**6) * 100]
    async with trio.open_nursery() as nursery:
        for _ in range(CLIENTS):
            nursery.start_soon(
                worker, server.url, cwd, ledger, random.Random(rng.random()), counter
            )
        # A random kill point: load shaping, not synchronisation.
        await trio.sleep(rng.uniform(0.2, 1.5))
        server.process.kill()  # SIGKILL
        with trio.fail_after(TIMEOUT):
            await server.process.wait()
        ledger.kills += 1
        nursery.cancel_scope.deadline = trio.current_time() + TIMEOUT


async def verify(url: str, cwd: Path, ledger: Ledger) -> None:
    async with connect_websocket(url) as client:
        await client.initialize("verifier")
        stored: dict[str, dict[str, Any]] = {}
        for thread_id in sorted(ledger.threads):
            thread = (
                await client.request("thread/read", {"threadId": thread_id, "includeTurns": True})
            )["thread"]
            assert thread["status"] == {"type": "notLoaded"}
            for turn in thread["turns"]:
                assert turn["status"] != "inProgress", f"a running turn was not interrupted: {turn}"
                stored[turn["id"]] = turn
        for turn_id, seen in ledger.completed.items():
            assert turn_id in stored, f"completed turn {turn_id} lost"
            turn = stored[turn_id]
            assert turn["status"] == seen["status"], (turn, seen)
            by_id = {item["id"]: item for item in turn["items"]}
            for item_id, item in ledger.items.get(turn_id, {}).items():
                assert by_id.get(item_id) == item, f"item differs after restart: {item}"
            assert len(turn["items"]) >= len(ledger.items.get(turn_id, {}))
        for turn_id, (_thread_id, script) in ledger.started.items():
            assert turn_id in stored, f"turn {turn_id} ({script!r}) acknowledged but not stored"
            if turn_id not in ledger.completed:
                assert stored[turn_id]["status"] in ("interrupted", "completed", "failed")
        for name, content in ledger.writes.items():
            assert (cwd / name).read_text() == content + "\n"
        # The old threads still work.
        if ledger.threads:
            thread_id = sorted(ledger.threads)[0]
            await client.request("thread/resume", {"threadId": thread_id})
            started = await client.request(
                "turn/start", {"threadId": thread_id, "input": text_input("/run echo alive")}
            )
            done = await client.next_notification(
                "turn/completed", where=lambda p: p["turn"]["id"] == started["turn"]["id"]
            )
            assert done["params"]["turn"]["status"] == "completed"
            await client.request("thread/unsubscribe", {"threadId": thread_id})


async def crash_rounds(tmp_path: Path, rounds: int) -> Ledger:
    seed = int(os.environ.get("APPSERVER_CRASH_SEED", random.randrange(2**32)))
    print(f"\n[crash] seed {seed}")
    rng = random.Random(seed)
    data_dir, cwd = tmp_path / "data", tmp_path / "cwd"
    cwd.mkdir()
    args = ("--data-dir", str(data_dir), "--log-level", "warning", "--shutdown-timeout", "1")
    ledger = Ledger()
    for _ in range(rounds):
        async with cli_server(*args, cwd=cwd) as server:
            await run_and_kill(server, cwd, ledger, rng)
        async with cli_server(*args, cwd=cwd) as server:
            with trio.fail_after(TIMEOUT * 2):
                assert integrity_check(data_dir) == "ok"
                await verify(server.url, cwd, ledger)
    assert integrity_check(data_dir) == "ok"
    # The test can fail only if the kills hit real work.
    assert ledger.completed, "no turn completed before the kills"
    unfinished = len(ledger.started) - len(ledger.completed)
    FIGURES.update(
        kills=ledger.kills,
        turns_started=len(ledger.started),
        turns_completed_seen=len(ledger.completed),
        turns_unfinished_at_kill=unfinished,
        items_checked=sum(len(v) for v in ledger.items.values()),
        files_checked=len(ledger.writes),
    )
    print(f"[crash] {FIGURES}")
    return ledger


async def test_sigkill_at_random_points_loses_nothing(tmp_path: Path) -> None:
    ledger = await crash_rounds(tmp_path, rounds=3)
    assert ledger.kills == 3


@pytest.mark.slow
async def test_sigkill_at_many_random_points_loses_nothing(tmp_path: Path) -> None:
    ledger = await crash_rounds(tmp_path, rounds=25)
    assert ledger.kills == 25
    # Some kill must have caught a turn mid-flight for the interrupted path to be tested.
    assert len(ledger.started) > len(ledger.completed)
