"""Persistence across real server processes (PROTOCOL.md §8.6-§8.8): SQLite files in
tmp_path, websocket clients, SIGTERM and SIGKILL."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from shapes import timed
from threads_support import (
    Message,
    Recorder,
    check_list_cursor_stability,
    check_list_filters,
    check_list_order_limits_and_pagination,
    collect_turn,
    completed_items,
    completed_turn,
    new_thread,
    of_thread,
    rpc_error,
    run_turn,
    start_turn,
    stored_thread,
)

from appserver.client import Client, connect_websocket, spawn_stdio
from appserver.server import Server, ServerConfig

from support import SchemaChecker, ServerProcess, run_ws_server

TIMEOUT = 40
IDLE = {"type": "idle"}
NOT_LOADED = {"type": "notLoaded"}
SYSTEM_ERROR = {"type": "systemError"}


@pytest.fixture
def server_config(tmp_path: Path) -> ServerConfig:
    """The in-process `server` fixture of this module keeps its store in SQLite."""
    return ServerConfig(data_dir=tmp_path / "store")


@asynccontextmanager
async def client_of(server: ServerProcess, checker: SchemaChecker) -> AsyncIterator[Client]:
    async with connect_websocket(server.url) as client:
        client.observer = checker.check
        await client.initialize("persistence")
        yield client


def integrity(data_dir: Path) -> str:
    with contextlib.closing(sqlite3.connect(data_dir / "appserver.sqlite3")) as db:
        rows = db.execute("PRAGMA integrity_check").fetchall()
    return ",".join(str(r[0]) for r in rows)


def without_status(thread: Message) -> Message:
    return {k: v for k, v in thread.items() if k != "status"}


def turn_from_events(turn_id: str, events: list[Message]) -> Message:
    """The turn as a snapshot must show it: its final state (times included) and every
    completed item (the full view). turn/completed itself carries only the final answer
    of a completed turn (the summary view), nothing for an interrupted or failed one."""
    done = completed_turn(events)
    assert done["id"] == turn_id
    items = completed_items(events)
    if done["status"] == "completed":
        answers = [i for i in items if i["type"] == "agentMessage"]
        assert (done["itemsView"], done["items"]) == ("summary", answers[-1:])
    else:
        assert (done["itemsView"], done["items"]) == ("notLoaded", [])
    timed(done)  # checks its times
    return {**done, "items": items, "itemsView": "full"}


async def kill_hard(server: ServerProcess) -> None:
    server.process.kill()
    assert await server.process.wait() == -9


async def test_restart_keeps_threads_turns_names_and_archived_flags(
    tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    data, work = tmp_path / "data", tmp_path / "work"
    work.mkdir()
    turns: dict[str, list[Message]] = {}
    with trio.fail_after(TIMEOUT):
        async with (
            run_ws_server("--data-dir", str(data), "--shutdown-timeout", "0.2") as first,
            client_of(first, schema_checker) as client,
        ):
            alpha = await new_thread(client, cwd=str(work), approvalPolicy="never")
            for script in ["/say hello there", "/think hmm\n/run echo out", "/write f.txt body"]:
                turn_id, events = await run_turn(client, alpha, script)
                turns.setdefault(alpha, []).append(turn_from_events(turn_id, events))
            await client.request("thread/name/set", {"threadId": alpha, "name": "Alpha"})
            archived = await new_thread(client)
            turn_id, events = await run_turn(client, archived, "/say filed away")
            turns[archived] = [turn_from_events(turn_id, events)]
            await client.request("thread/archive", {"threadId": archived})
            failed = await new_thread(client)
            turn_id, events = await run_turn(client, failed, "/fail broken")
            turns[failed] = [turn_from_events(turn_id, events)]
            empty = await new_thread(client)
            running = await new_thread(client)
            running_turn = await start_turn(client, running, "/sleep 30")
            await client.next_notification("turn/started", where=of_thread(running))
            before = {
                tid: await stored_thread(client, tid)
                for tid in (alpha, archived, failed, empty, running)
            }
        assert first.process.returncode == 0  # SIGTERM: clean exit

        async with (
            run_ws_server("--data-dir", str(data)) as second,
            client_of(second, schema_checker) as client,
        ):
            listed = (await client.request("thread/list"))["data"]
            assert {t["id"] for t in listed} == {alpha, failed, empty, running}
            assert all(t["status"] == NOT_LOADED for t in listed)
            assert {t["id"]: t["name"] for t in listed}[alpha] == "Alpha"
            only_archived = (await client.request("thread/list", {"archived": True}))["data"]
            assert [t["id"] for t in only_archived] == [archived]
            assert (await client.request("thread/loaded/list"))["data"] == []

            for tid in (alpha, archived, failed, empty):
                after = await stored_thread(client, tid)
                assert after["status"] == NOT_LOADED
                assert without_status(after) == without_status(before[tid])
                assert after["turns"] == turns.get(tid, [])
            # The turn still running at SIGTERM was interrupted and stored so.
            after = await stored_thread(client, running)
            assert [(t["id"], t["status"]) for t in after["turns"]] == [
                (running_turn, "interrupted")
            ]

            resumed = await client.request("thread/resume", {"threadId": alpha})
            assert resumed["thread"]["turns"] == turns[alpha]
            assert resumed["thread"]["status"] == IDLE and resumed["thread"]["name"] == "Alpha"
            assert (resumed["approvalPolicy"], resumed["cwd"]) == ("never", str(work))
            change = await client.next_notification("thread/status/changed", where=of_thread(alpha))
            assert change["params"]["status"] == IDLE
            resumed = await client.request("thread/resume", {"threadId": failed})
            assert resumed["thread"]["status"] == SYSTEM_ERROR
            change = await client.next_notification(
                "thread/status/changed", where=of_thread(failed)
            )
            assert change["params"]["status"] == SYSTEM_ERROR
            error = await rpc_error(client, "thread/resume", {"threadId": archived})
            assert error.kind == "threadArchived"

            # The stored settings still apply: `never` runs without asking.
            _, events = await run_turn(client, alpha, "/run cat f.txt")
            [item] = [i for i in completed_items(events) if i["type"] == "commandExecution"]
            assert (item["status"], item["aggregatedOutput"]) == ("completed", "body\n")
        assert second.process.returncode == 0
    assert integrity(data) == "ok"


@pytest.mark.parametrize("work", ["/sleep 30", "/stream 100000 8"])
async def test_kill_9_mid_turn_keeps_completed_work(
    tmp_path: Path, schema_checker: SchemaChecker, work: str
) -> None:
    data = tmp_path / "data"
    with trio.fail_after(TIMEOUT):
        async with (
            run_ws_server("--data-dir", str(data)) as first,
            client_of(first, schema_checker) as client,
        ):
            thread_id = await new_thread(client)
            done_id, events = await run_turn(client, thread_id, "/say all done")
            done = turn_from_events(done_id, events)
            cut_id = await start_turn(client, thread_id, f"/say partial answer\n{work}")
            partial = await client.next_notification(
                "item/completed",
                where=lambda p: p["item"]["type"] == "agentMessage",
            )
            user = await client.next_notification(
                "item/completed", where=lambda p: p["item"]["type"] == "userMessage"
            )
            if work.startswith("/stream"):  # killed while deltas pour out
                await client.next_notification(
                    "item/agentMessage/delta",
                    where=lambda p: p["itemId"] != partial["params"]["item"]["id"],
                )
            await kill_hard(first)

        async with (
            run_ws_server("--data-dir", str(data)) as second,
            client_of(second, schema_checker) as client,
        ):
            thread = await stored_thread(client, thread_id)
            assert thread["status"] == NOT_LOADED
            first_turn, cut = thread["turns"]
            assert first_turn == done
            assert (cut["id"], cut["status"], cut["error"]) == (cut_id, "interrupted", None)
            assert cut["items"][:2] == [user["params"]["item"], partial["params"]["item"]]
            assert partial["params"]["item"]["text"] == "partial answer"

            resumed = await client.request("thread/resume", {"threadId": thread_id})
            assert resumed["thread"]["status"] == IDLE
            assert [t["status"] for t in resumed["thread"]["turns"]] == [
                "completed",
                "interrupted",
            ]
            _, events = await run_turn(client, thread_id, "/say alive again")
            assert completed_turn(events)["status"] == "completed"
        assert second.process.returncode == 0
    assert integrity(data) == "ok"


async def test_sigterm_lets_a_running_turn_finish(
    tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    data = tmp_path / "data"
    with trio.fail_after(TIMEOUT):
        async with (
            run_ws_server("--data-dir", str(data)) as first,
            client_of(first, schema_checker) as client,
        ):
            thread_id = await new_thread(client)
            turn_id = await start_turn(client, thread_id, "/say first\n/sleep 0.5\n/say second")
            await client.next_notification(
                "item/completed", where=lambda p: p["item"]["type"] == "agentMessage"
            )
            first.process.terminate()
            events = await collect_turn(client, thread_id, turn_id)
            assert completed_turn(events)["status"] == "completed"
            await client.wait_closed()
            assert client.close_code == 1001
            assert await first.process.wait() == 0
        async with (
            run_ws_server("--data-dir", str(data)) as second,
            client_of(second, schema_checker) as client,
        ):
            [turn] = (await stored_thread(client, thread_id))["turns"]
            assert turn["status"] == "completed"
            assert [i.get("text") for i in turn["items"][1:]] == ["first", "second"]
    assert integrity(data) == "ok"


async def test_stdio_end_of_input_interrupts_at_once_and_stores_it(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    with trio.fail_after(TIMEOUT):
        async with spawn_stdio(["--data-dir", data, "--log-level", "warning"]) as client:
            await client.initialize("stdio")
            thread_id = await new_thread(client)
            turn_id = await start_turn(client, thread_id, "/say working\n/sleep 30")
            await client.next_notification(
                "item/completed", where=lambda p: p["item"]["type"] == "agentMessage"
            )
        # Leaving closed stdin; the server had to be done well before the 30 s sleep.
        assert client.process is not None and client.process.returncode == 0
        async with spawn_stdio(["--data-dir", data, "--log-level", "warning"]) as client:
            await client.initialize("stdio-again")
            [turn] = (await stored_thread(client, thread_id))["turns"]
            assert (turn["id"], turn["status"]) == (turn_id, "interrupted")
            assert [i["type"] for i in turn["items"]] == ["userMessage", "agentMessage"]
    assert integrity(tmp_path / "data") == "ok"


async def test_thread_is_stored_before_the_start_response(
    tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    data = tmp_path / "data"
    with trio.fail_after(TIMEOUT):
        async with (
            run_ws_server("--data-dir", str(data)) as first,
            client_of(first, schema_checker) as a,
            client_of(first, schema_checker) as b,
        ):
            thread_id = await new_thread(a, cwd=str(tmp_path))
            # Readable at once, from another connection.
            assert (await stored_thread(b, thread_id))["id"] == thread_id
            killed_right_after = await new_thread(a)
            await kill_hard(first)
        async with (
            run_ws_server("--data-dir", str(data)) as second,
            client_of(second, schema_checker) as client,
        ):
            listed = (await client.request("thread/list"))["data"]
            assert {t["id"] for t in listed} == {thread_id, killed_right_after}
            thread = await stored_thread(client, thread_id)
            assert thread["cwd"] == str(tmp_path) and thread["turns"] == []
    assert integrity(data) == "ok"


async def test_end_to_end_over_websocket_across_a_restart(
    tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    """The issue's "Done when": start a thread, run /say /think /run /write /stream /fail
    turns; list, read, rename, archive, unarchive; restart; resume; every message valid."""
    data, work = tmp_path / "data", tmp_path / "work"
    work.mkdir()
    checked_before = schema_checker.checked
    recorded = 0
    with trio.fail_after(TIMEOUT):
        async with (
            run_ws_server("--data-dir", str(data)) as first,
            client_of(first, schema_checker) as client,
        ):
            recorder = Recorder(client)
            thread_id = await new_thread(client, cwd=str(work))
            other = await new_thread(client, cwd=str(work))
            turns: list[Message] = []

            for script in ["/say hi there", "/think deep thought", "/stream 50 4"]:
                turn_id, events = await run_turn(client, thread_id, script)
                assert completed_turn(events)["status"] == "completed"
                turns.append(turn_from_events(turn_id, events))

            for script, approval in [
                ("/run echo ran", "item/commandExecution/requestApproval"),
                ("/write out.txt written", "item/fileChange/requestApproval"),
            ]:
                turn_id = await start_turn(client, thread_id, script)
                request = await client.next_server_request(approval)
                assert request.params["turnId"] == turn_id
                await client.respond(request.id, {"decision": "accept"})
                events = await collect_turn(client, thread_id, turn_id)
                assert completed_turn(events)["status"] == "completed"
                turns.append(turn_from_events(turn_id, events))
            assert (work / "out.txt").read_text() == "written\n"
            run_item = turns[3]["items"][1]
            assert (run_item["aggregatedOutput"], run_item["exitCode"]) == ("ran\n", 0)

            turn_id, events = await run_turn(client, thread_id, "/fail on purpose")
            assert completed_turn(events)["error"]["message"] == "on purpose"
            turns.append(turn_from_events(turn_id, events))

            listed = (await client.request("thread/list"))["data"]
            assert {t["id"] for t in listed} == {thread_id, other}
            read = await stored_thread(client, thread_id)
            assert read["turns"] == turns and read["status"] == SYSTEM_ERROR
            await client.request("thread/name/set", {"threadId": thread_id, "name": "E2E"})
            await client.request("thread/archive", {"threadId": other})
            await client.request("thread/unarchive", {"threadId": other})
            await client.request("thread/archive", {"threadId": other})
            recorded += len(recorder.messages)

        async with (
            run_ws_server("--data-dir", str(data)) as second,
            client_of(second, schema_checker) as client,
        ):
            recorder = Recorder(client)
            listed = (await client.request("thread/list"))["data"]
            assert [(t["id"], t["name"]) for t in listed] == [(thread_id, "E2E")]
            archived = (await client.request("thread/list", {"archived": True}))["data"]
            assert [t["id"] for t in archived] == [other]
            unarchived = await client.request("thread/unarchive", {"threadId": other})
            assert unarchived["thread"]["id"] == other
            await client.next_notification("thread/unarchived")
            resumed = await client.request("thread/resume", {"threadId": thread_id})
            assert resumed["thread"]["turns"] == turns
            assert resumed["thread"]["status"] == SYSTEM_ERROR
            assert resumed["thread"]["name"] == "E2E"
            _, events = await run_turn(client, thread_id, "/say back again")
            assert completed_turn(events)["status"] == "completed"
            resumed = await client.request("thread/resume", {"threadId": other})
            assert resumed["thread"]["status"] == IDLE
            recorded += len(recorder.messages)
    assert schema_checker.checked - checked_before >= recorded > 0


# --- thread/list on the SQLite store (the in-process `server`, see server_config) ---------


async def test_sqlite_thread_list_order_limits_and_pagination(
    server: Server, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    assert server.handlers.services.codex_home == str((tmp_path / "store").resolve())
    with trio.fail_after(TIMEOUT):
        async with server.connect() as client:
            client.observer = schema_checker.check
            await client.initialize("sqlite-list")
            await check_list_order_limits_and_pagination(client)


async def test_sqlite_thread_list_filters(
    server: Server, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    work = tmp_path / "filters"
    work.mkdir()
    with trio.fail_after(TIMEOUT):
        async with server.connect() as client:
            client.observer = schema_checker.check
            await client.initialize("sqlite-filters")
            await check_list_filters(client, work)


async def test_sqlite_thread_list_cursor_stability(
    server: Server, schema_checker: SchemaChecker
) -> None:
    with trio.fail_after(TIMEOUT):
        async with server.connect() as client:
            client.observer = schema_checker.check
            await client.initialize("sqlite-stable")
            await check_list_cursor_stability(client)


async def test_a_locked_store_refuses_the_request_and_stores_nothing(
    tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    """§8.6 in a real process: with the database locked by another connection past the
    busy timeout, a request is answered -32603 storeUnavailable with SQLite's reason,
    nothing of it is stored, and the server works again once the lock is gone."""
    data = tmp_path / "store"
    with trio.fail_after(TIMEOUT):
        async with (
            run_ws_server("--data-dir", str(data)) as first,
            client_of(first, schema_checker) as client,
        ):
            thread_id = await new_thread(client)
            lock = sqlite3.connect(data / "appserver.sqlite3", timeout=10, isolation_level=None)
            try:
                lock.execute("BEGIN EXCLUSIVE")
                params = {"threadId": thread_id, "name": "never stored"}
                error = await rpc_error(client, "thread/name/set", params)
            finally:
                lock.close()  # rolls back, releasing the lock
            assert (error.code, error.data) == (-32603, {"kind": "storeUnavailable"})
            assert "database is locked" in error.message
            assert (await stored_thread(client, thread_id))["name"] is None
            await client.request("thread/name/set", {"threadId": thread_id, "name": "stored"})
        async with (
            run_ws_server("--data-dir", str(data)) as second,
            client_of(second, schema_checker) as client,
        ):
            assert (await stored_thread(client, thread_id))["name"] == "stored"
