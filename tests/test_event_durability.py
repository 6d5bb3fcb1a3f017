"""Numbered events survive unload and restart with the SQLite store, and a crash
(SIGKILL) never makes the server hand out a seq again (PROTOCOL.md §13). Real server
processes on a real data dir, over websockets."""

from __future__ import annotations

import signal
from pathlib import Path

import trio
from event_seq_support import (
    collect_until_completed,
    init_seq,
    next_numbered,
    seqs,
    start_turn,
    thread_events,
)

from appserver.client import connect_websocket

from support import run_ws_server

TIMEOUT = 60


async def test_seqs_and_replay_survive_unload_and_restart(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    with trio.fail_after(TIMEOUT):
        async with (
            run_ws_server("--data-dir", data) as server,
            connect_websocket(server.url) as a,
        ):
            await init_seq(a)
            thread_id = (await a.request("thread/start"))["thread"]["id"]
            turn = await start_turn(a, thread_id, "/say one two three")
            first = thread_events(await collect_until_completed(a, turn), thread_id)
            # Unload (last unsubscribe closes it), then load it again: replay works.
            await a.request("thread/unsubscribe", {"threadId": thread_id})
            await a.next_notification("thread/closed")
            result = await a.request("thread/resume", {"threadId": thread_id, "afterSeq": 2})
            assert result["replay"] == {"fromSeq": 3, "toSeq": len(first)}
            assert await next_numbered(a, len(first) - 2) == first[2:]
        async with (
            run_ws_server("--data-dir", data) as server,  # a clean restart
            connect_websocket(server.url) as b,
        ):
            await init_seq(b)
            result = await b.request("thread/resume", {"threadId": thread_id, "afterSeq": 1})
            assert result["replay"] == {"fromSeq": 2, "toSeq": len(first)}
            assert await next_numbered(b, len(first) - 1) == first[1:]
            turn = await start_turn(b, thread_id, "/say again")
            second = thread_events(await collect_until_completed(b, turn), thread_id)
    assert seqs(first + second) == list(range(1, len(first) + len(second) + 1))


async def test_a_crash_never_reuses_a_seq(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    with trio.fail_after(TIMEOUT):
        async with (
            run_ws_server("--data-dir", data) as server,
            connect_websocket(server.url) as a,
        ):
            await init_seq(a)
            thread_id = (await a.request("thread/start"))["thread"]["id"]
            await start_turn(a, thread_id, "/stream 20\n/sleep 30")
            seen: list[int] = []
            while len(seen) < 15:
                message = await a.next_notification()
                if "seq" in message:
                    seen.append(message["seq"])
            server.process.send_signal(signal.SIGKILL)
            await server.process.wait()
        async with (
            run_ws_server("--data-dir", data) as server,
            connect_websocket(server.url) as b,
        ):
            await init_seq(b)
            # The log has lost its tail and the crash cut the turn off: the snapshot.
            result = await b.request("thread/resume", {"threadId": thread_id, "afterSeq": seen[-1]})
            assert result["replay"] is None
            assert result["thread"]["turns"][-1]["status"] == "interrupted"
            result = await b.request("thread/resume", {"threadId": thread_id, "afterSeq": 1})
            assert result["replay"] is None
            turn = await start_turn(b, thread_id, "/say after the crash")
            after = thread_events(await collect_until_completed(b, turn), thread_id)
    assert after[0]["seq"] > max(seen)
    assert seqs(after) == list(range(after[0]["seq"], after[0]["seq"] + len(after)))
