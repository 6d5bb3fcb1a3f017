"""Shutdown of the real CLI (PROTOCOL.md §8.8): SIGTERM lets running turns finish for up to
--shutdown-timeout, interrupts the rest (stored interrupted), closes websockets with 1001 and
exits 0; a second signal cuts it short; stdin EOF in stdio mode interrupts at once."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
import trio
from multiclient_support import (
    Recorder,
    read_thread,
    run_cli,
    start_thread,
    start_turn,
    turn_completed,
)

from appserver.client import Client, ConnectError, connect_websocket, spawn_stdio

from support import SchemaChecker

TIMEOUT = 30


async def stored_turns(data_dir: Path, thread_id: str) -> dict[str, Any]:
    """The thread as a restarted server on the same data dir reads it."""
    async with spawn_stdio(["--data-dir", str(data_dir), "--log-level", "warning"]) as client:
        await client.initialize("after-restart")
        thread = await read_thread(client, thread_id)
    return thread


async def start_sleeping_turn(
    client: Client, checker: SchemaChecker, seconds: float
) -> tuple[str, str]:
    Recorder(client, checker)
    await client.initialize("shutdown")
    thread_id = await start_thread(client, approvalPolicy="never")
    turn_id = await start_turn(client, thread_id, f"/sleep {seconds}\n/say finished")
    await client.next_notification("turn/started")
    return thread_id, turn_id


async def test_sigterm_lets_a_running_turn_finish(
    tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    data = tmp_path / "data"
    with trio.fail_after(TIMEOUT):
        async with (
            run_cli("--data-dir", str(data), "--shutdown-timeout", "30") as server,
            connect_websocket(server.url) as client,
        ):
            thread_id, turn_id = await start_sleeping_turn(client, schema_checker, 2)
            server.signal(signal.SIGTERM)
            await server.wait_for_line(lambda line: "received SIGTERM" in line)
            # No new connections once shutdown has begun.
            with pytest.raises(ConnectError):
                async with connect_websocket(server.url):
                    pass
            turn = await turn_completed(client, thread_id, turn_id)
            said = await client.next_notification(
                "item/completed", where=lambda p: p["item"]["type"] == "agentMessage"
            )
            await client.wait_closed()
            assert await server.process.wait() == 0
    assert turn["status"] == "completed"
    assert said["params"]["item"]["text"] == "finished"
    assert client.close_code == 1001
    stored = await stored_turns(data, thread_id)
    assert [t["status"] for t in stored["turns"]] == ["completed"]


async def test_sigterm_interrupts_a_turn_still_running_at_the_shutdown_timeout(
    tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    data = tmp_path / "data"
    with trio.fail_after(TIMEOUT):
        async with (
            run_cli("--data-dir", str(data), "--shutdown-timeout", "1") as server,
            connect_websocket(server.url) as client,
        ):
            thread_id, turn_id = await start_sleeping_turn(client, schema_checker, 60)
            server.signal(signal.SIGTERM)
            started = trio.current_time()
            turn = await turn_completed(client, thread_id, turn_id)
            await client.wait_closed()
            assert await server.process.wait() == 0
            elapsed = trio.current_time() - started
    assert turn["status"] == "interrupted"
    assert client.close_code == 1001
    assert 1 <= elapsed < 10
    stored = await stored_turns(data, thread_id)
    assert [(t["id"], t["status"]) for t in stored["turns"]] == [(turn_id, "interrupted")]
    assert stored["status"] == {"type": "notLoaded"}


async def test_second_sigterm_cuts_a_long_shutdown_short(
    tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    data = tmp_path / "data"
    with trio.fail_after(TIMEOUT):
        async with (
            run_cli("--data-dir", str(data), "--shutdown-timeout", "60") as server,
            connect_websocket(server.url) as client,
        ):
            thread_id, turn_id = await start_sleeping_turn(client, schema_checker, 60)
            server.signal(signal.SIGTERM)
            # The first signal must have been taken before the second is sent (signals of
            # one kind that are pending together are delivered once).
            await server.wait_for_line(lambda line: "received SIGTERM" in line)
            started = trio.current_time()
            server.signal(signal.SIGTERM)
            turn = await turn_completed(client, thread_id, turn_id)
            await client.wait_closed()
            assert await server.process.wait() == 0
            elapsed = trio.current_time() - started
    assert turn["status"] == "interrupted"
    assert client.close_code == 1001
    assert elapsed < 10
    stored = await stored_turns(data, thread_id)
    assert [(t["id"], t["status"]) for t in stored["turns"]] == [(turn_id, "interrupted")]


async def test_stdio_eof_interrupts_at_once_and_exits_0(
    tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    data = tmp_path / "data"
    args = ["--data-dir", str(data), "--shutdown-timeout", "60", "--log-level", "warning"]
    with trio.fail_after(TIMEOUT):
        async with spawn_stdio(args) as client:
            Recorder(client, schema_checker)
            await client.initialize("eof")
            thread_id = await start_thread(client, approvalPolicy="never")
            turn_id = await start_turn(client, thread_id, "/sleep 60")
            await client.next_notification("turn/started")
            process = client.process
            assert process is not None and process.stdin is not None
            started = trio.current_time()
            await process.stdin.aclose()
            await client.wait_closed()
            assert await process.wait() == 0
            elapsed = trio.current_time() - started
    assert elapsed < 10  # not the 60 s shutdown timeout
    stored = await stored_turns(data, thread_id)
    assert [(t["id"], t["status"]) for t in stored["turns"]] == [(turn_id, "interrupted")]
