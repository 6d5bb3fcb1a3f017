"""Thread methods (PROTOCOL.md §4, §5.1-§5.8, §8.4, §9) against a real server."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import trio
from shapes import timed, turn_shape
from threads_support import (
    TIMEOUT,
    Recorder,
    all_threads,
    check_list_cursor_stability,
    check_list_filters,
    check_list_order_limits_and_pagination,
    collect_turn,
    error_paths,
    list_ids,
    new_thread,
    new_uuid,
    next_second,
    of_thread,
    rpc_error,
    run_turn,
    start_thread,
    start_turn,
    stored_thread,
    unload,
)

from appserver._version import __version__
from appserver.client import Client
from appserver.server import Server

from conftest import ConnectFactory
from support import SchemaChecker

IDLE = {"type": "idle"}
NOT_LOADED = {"type": "notLoaded"}
ACTIVE = {"type": "active", "activeFlags": []}


async def barrier(*clients: Client) -> None:
    """One round trip per client: every notification the server queued for a client
    before answering has arrived once this returns (per-connection FIFO, §2.3)."""
    for client in clients:
        await client.request("thread/loaded/list")


def notified(client: Client, method: str, thread_id: str | None = None) -> list[dict[str, Any]]:
    return [
        n
        for n in client.notifications
        if n.get("method") == method
        and (thread_id is None or (n.get("params") or {}).get("threadId") == thread_id)
    ]


# --- thread/start (§5.1) ----------------------------------------------------------------


async def test_thread_start_result_and_defaults(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("start")
            before = int(time.time())
            result = await start_thread(client)
            after = int(time.time())
    cwd = os.getcwd()
    thread = result["thread"]
    assert result == {
        "thread": thread,
        "model": "script",
        "modelProvider": "builtin",
        "serviceTier": None,
        "disabledPluginIds": [],
        "instructionSources": [],
        "cwd": cwd,
        "approvalPolicy": "on-request",
        "approvalsReviewer": "user",
        "sandbox": {"type": "workspaceWrite", "writableRoots": [cwd], "networkAccess": False},
        "reasoningEffort": None,
    }
    assert uuid.UUID(thread["id"]).version == 7
    assert before <= thread["createdAt"] == thread["updatedAt"] == thread["recencyAt"] <= after
    times = ("id", "createdAt", "updatedAt", "recencyAt")
    assert {k: v for k, v in thread.items() if k not in times} == {
        "sessionId": thread["id"],
        "forkedFromId": None,
        "parentThreadId": None,
        "preview": "",
        "name": None,
        "ephemeral": False,
        "projectId": None,
        "historyMode": "legacy",
        "modelProvider": "builtin",
        "model": "script",
        "reasoningEffort": None,
        "cwd": cwd,
        "status": IDLE,
        "path": None,
        "cliVersion": __version__,
        "originator": "start",  # the creating client's clientInfo.name
        "source": "appServer",
        "threadSource": None,
        "section": None,
        "sectionEnteredAt": None,
        "agentNickname": None,
        "agentRole": None,
        "gitInfo": None,
        "turns": [],
    }


async def test_thread_start_sandbox_policy_per_mode_and_given_settings(
    connect: ConnectFactory, tmp_path: Path
) -> None:
    cwd = str(tmp_path)
    cases = [
        ("read-only", "untrusted", {"type": "readOnly"}),
        (
            "workspace-write",
            "on-failure",
            {"type": "workspaceWrite", "writableRoots": [cwd], "networkAccess": False},
        ),
        ("danger-full-access", "never", {"type": "dangerFullAccess"}),
        (
            None,
            "on-request",
            {"type": "workspaceWrite", "writableRoots": [cwd], "networkAccess": False},
        ),
    ]
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("sandbox")
            for mode, policy, expected in cases:
                params: dict[str, Any] = {"cwd": cwd, "approvalPolicy": policy, "model": "script"}
                if mode is not None:
                    params["sandbox"] = mode
                result = await start_thread(client, **params)
                assert result["sandbox"] == expected, mode
                # 0.171 has no `on-failure`: it asks as `on-request` does, and says so.
                reported = "on-request" if policy == "on-failure" else policy
                assert result["approvalPolicy"] == reported
                assert result["cwd"] == result["thread"]["cwd"] == cwd
                assert result["model"] == "script"
            assert len(await list_ids(client)) == len(cases)


async def test_thread_started_is_broadcast_after_the_callers_response(
    connect_shared: ConnectFactory,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect_shared() as a, connect_shared() as b, connect_shared() as fresh:
            await a.initialize("a")
            await b.initialize("b")
            recorder = Recorder(a)
            result = await start_thread(a)
            thread_id = result["thread"]["id"]
            seen_by_b = await b.next_notification("thread/started")
            seen_by_a = await a.next_notification("thread/started")
            assert seen_by_b["params"] == seen_by_a["params"] == {"thread": result["thread"]}
            assert recorder.answer_index("thread/start") < recorder.notification_index(
                "thread/started"
            )
            await barrier(a, b)
            # No thread/status/changed for the creation itself (§5.1).
            assert notified(a, "thread/status/changed") == []
            assert notified(b, "thread/status/changed") == []
            # A connection that never initialized gets no notification at all (§3).
            await rpc_error(fresh, "thread/loaded/list")
            assert fresh.notifications == []
            # The caller is subscribed: its turn traffic reaches it, not b.
            turn_id, events = await run_turn(a, thread_id, "/say hi")
            assert events[-2]["params"]["turn"]["id"] == turn_id
            await barrier(b)
            assert notified(b, "turn/started") == []
            assert len(notified(b, "thread/status/changed", thread_id)) == 2  # broadcast


async def test_thread_start_validates_params(connect: ConnectFactory, tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("validate")
            error = await rpc_error(client, "thread/start", {"cwd": "relative/dir"})
            assert error_paths(error) == {"cwd"} and "relative/dir" in error.message
            missing = str(tmp_path / "missing")
            error = await rpc_error(client, "thread/start", {"cwd": missing})
            assert error_paths(error) == {"cwd"} and missing in error.message
            error = await rpc_error(client, "thread/start", {"modelProvider": "no-such-agent"})
            assert error_paths(error) == {"modelProvider"} and "no-such-agent" in error.message
            error = await rpc_error(
                client,
                "thread/start",
                {
                    "cwd": 5,
                    "ephemeral": "yes",
                    "approvalPolicy": "sometimes",
                    "sandbox": 3,
                    "config": [1],
                },
            )
            assert error_paths(error) == {"cwd", "ephemeral", "approvalPolicy", "sandbox", "config"}
            error = await rpc_error(client, "thread/start", [1, 2])
            assert error.code == -32602
            # Nulls mean absent (§9); unknown extra fields are ignored.
            nulls = {
                key: None
                for key in (
                    "model",
                    "modelProvider",
                    "cwd",
                    "approvalPolicy",
                    "sandbox",
                    "approvalsReviewer",
                    "baseInstructions",
                    "developerInstructions",
                    "config",
                    "ephemeral",
                )
            }
            result = await start_thread(client, **nulls, someFutureField={"x": 1})
            assert result["approvalPolicy"] == "on-request"
            assert result["sandbox"]["type"] == "workspaceWrite"
            assert (result["model"], result["modelProvider"]) == ("script", "builtin")
            assert result["thread"]["ephemeral"] is False
            # Only the valid request created (and announced) a thread.
            assert await list_ids(client) == [result["thread"]["id"]]
            await barrier(client)
            assert len(notified(client, "thread/started")) == 1


# --- thread/read (§5.3) -----------------------------------------------------------------


async def test_thread_read_with_and_without_turns_loaded_unloaded_archived(
    connect: ConnectFactory,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("read")
            thread_id = await new_thread(client)
            turn_id, events = await run_turn(client, thread_id, "/say hi there")
            items = [e["params"]["item"] for e in events if e["method"] == "item/completed"]
            assert [i["type"] for i in items] == ["userMessage", "agentMessage"]
            done = events[-2]["params"]["turn"]
            assert timed(done) == turn_shape(turn_id, "completed", "summary", items[1:])
            # Snapshots show every item (the full view), with the times turn/completed gave.
            expected_turns = [{**done, "items": items, "itemsView": "full"}]

            plain = (await client.request("thread/read", {"threadId": thread_id}))["thread"]
            assert plain["turns"] == [] and plain["status"] == IDLE
            assert plain["preview"] == "/say hi there"
            assert (await stored_thread(client, thread_id, turns=False))["turns"] == []
            full = await stored_thread(client, thread_id)
            assert full["turns"] == expected_turns
            assert {k: v for k, v in full.items() if k != "turns"} == {
                k: v for k, v in plain.items() if k != "turns"
            }

            await unload(client, thread_id)
            unloaded = await stored_thread(client, thread_id)
            assert unloaded["status"] == NOT_LOADED
            assert unloaded["turns"] == expected_turns
            # thread/read loads nothing and subscribes nobody.
            assert (await client.request("thread/loaded/list"))["data"] == []

            assert await client.request("thread/archive", {"threadId": thread_id}) == {}
            archived = await stored_thread(client, thread_id)
            assert archived["turns"] == expected_turns and archived["status"] == NOT_LOADED


# --- thread/list (§5.4) -----------------------------------------------------------------


async def test_thread_list_order_default_limit_clamp_and_full_pagination(
    server: Server, schema_checker: SchemaChecker
) -> None:
    with trio.fail_after(TIMEOUT):
        async with server.connect() as client:
            client.observer = schema_checker.check
            await client.initialize("list")
            await check_list_order_limits_and_pagination(client)


async def test_thread_list_cursor_is_stable_while_threads_are_created_and_updated(
    connect_shared: ConnectFactory,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect_shared() as client:
            await client.initialize("stable")
            await check_list_cursor_stability(client)


async def test_thread_list_filters(connect: ConnectFactory, tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("filters")
            await check_list_filters(client, tmp_path)


async def test_thread_list_cwd_filter_matches_the_cwd_threads_report(
    server: Server, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    with trio.fail_after(TIMEOUT):
        async with server.connect() as client:
            client.observer = schema_checker.check
            await client.initialize("moved")
            thread_id = await new_thread(client, cwd=str(old))
            await run_turn(client, thread_id, "/say moving", cwd=str(new))
            assert (await stored_thread(client, thread_id))["cwd"] == str(new)
            listed = (await client.request("thread/list", {"cwd": str(old)}))["data"]
            assert [t["cwd"] for t in listed] in ([], [str(old)])
            assert await list_ids(client, cwd=str(new)) == [thread_id]


async def test_thread_list_shows_live_status(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("live")
            idle = await new_thread(client)
            unloaded = await new_thread(client)
            await unload(client, unloaded)
            sleeping = await new_thread(client)
            sleep_turn = await start_turn(client, sleeping, "/sleep 30")
            await client.next_notification("turn/started", where=of_thread(sleeping))
            asking = await new_thread(client)
            ask_turn = await start_turn(client, asking, "/run true")
            request = await client.next_server_request("item/commandExecution/requestApproval")

            statuses = {t["id"]: t["status"] for t in await all_threads(client)}
            assert statuses == {
                idle: IDLE,
                unloaded: NOT_LOADED,
                sleeping: ACTIVE,
                asking: {"type": "active", "activeFlags": ["waitingOnApproval"]},
            }
            await client.respond(request.id, {"decision": "cancel"})
            events = await collect_turn(client, asking, ask_turn)
            assert events[-2]["params"]["turn"]["status"] == "interrupted"
            assert (
                await client.request("turn/interrupt", {"threadId": sleeping, "turnId": sleep_turn})
                == {}
            )
            statuses = {t["id"]: t["status"] for t in await all_threads(client)}
            assert statuses[sleeping] == statuses[asking] == IDLE


# --- thread/loaded/list (§5.5) ----------------------------------------------------------


async def test_thread_loaded_list_sorted_with_cursor_and_limit(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("loaded")
            ids = [await new_thread(client) for _ in range(5)]
            await unload(client, ids[2])
            loaded = sorted(i for i in ids if i != ids[2])
            assert await client.request("thread/loaded/list") == {
                "data": loaded,
                "nextCursor": None,
            }
            first = await client.request("thread/loaded/list", {"limit": 3})
            assert first == {"data": loaded[:3], "nextCursor": loaded[2]}
            rest = await client.request(
                "thread/loaded/list", {"limit": 3, "cursor": first["nextCursor"]}
            )
            assert rest == {"data": loaded[3:], "nextCursor": None}
            exact = await client.request("thread/loaded/list", {"limit": 2, "cursor": loaded[1]})
            assert exact == {"data": loaded[2:], "nextCursor": None}
            assert await client.request("thread/loaded/list", {"cursor": None, "limit": None}) == {
                "data": loaded,
                "nextCursor": None,
            }


# --- thread/name/set (§5.8) -------------------------------------------------------------


async def test_thread_name_set_trims_validates_broadcasts_and_moves_updated_at(
    connect_shared: ConnectFactory,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect_shared() as a, connect_shared() as b:
            await a.initialize("a")
            await b.initialize("b")
            started = (await start_thread(a))["thread"]
            thread_id = started["id"]
            await next_second(started["updatedAt"])

            before = int(time.time())
            assert (
                await a.request(
                    "thread/name/set", {"threadId": thread_id, "name": "  My thread \n"}
                )
                == {}
            )
            after = int(time.time())
            expected = {"threadId": thread_id, "threadName": "My thread"}
            assert (await b.next_notification("thread/name/updated"))["params"] == expected
            assert (await a.next_notification("thread/name/updated"))["params"] == expected
            thread = await stored_thread(b, thread_id, turns=False)
            assert thread["name"] == "My thread"
            assert before <= thread["updatedAt"] <= after
            assert thread["updatedAt"] > thread["createdAt"] == started["createdAt"]

            for bad in ["", "   ", "x" * 201, " " + "y" * 201 + " "]:
                error = await rpc_error(a, "thread/name/set", {"threadId": thread_id, "name": bad})
                assert error_paths(error) == {"name"}
            error = await rpc_error(a, "thread/name/set", {"threadId": thread_id, "name": 7})
            assert error_paths(error) == {"name"}
            error = await rpc_error(a, "thread/name/set", {"threadId": thread_id})
            assert error_paths(error) == {"name"}
            longest = "z" * 200
            await a.request("thread/name/set", {"threadId": thread_id, "name": f"\t{longest} "})
            assert (await stored_thread(a, thread_id))["name"] == longest

            # A stored, unloaded thread: renamed without being loaded.
            await unload(a, thread_id)
            await a.request("thread/name/set", {"threadId": thread_id, "name": "offline"})
            note = await b.next_notification(
                "thread/name/updated", where=lambda p: p["threadName"] == "offline"
            )
            assert note["params"]["threadId"] == thread_id
            thread = await stored_thread(a, thread_id)
            assert (thread["name"], thread["status"]) == ("offline", NOT_LOADED)
            assert (await a.request("thread/loaded/list"))["data"] == []
            await barrier(a, b)
            # Of the refused renames, none was announced; the 200-character one was.
            assert [n["params"]["threadName"] for n in notified(b, "thread/name/updated")] == [
                longest
            ]


# --- thread/archive, thread/unarchive (§5.6) --------------------------------------------


async def test_archive_and_unarchive(connect_shared: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect_shared() as a, connect_shared() as b:
            await a.initialize("a")
            await b.initialize("b")
            loaded = await new_thread(a)
            stored = await new_thread(a)
            await unload(a, stored)
            await b.next_notification("thread/closed", where=of_thread(stored))
            b.drain_notifications()

            # Archiving a loaded thread closes it: status notLoaded, then thread/archived
            # (instead of thread/closed).
            assert await a.request("thread/archive", {"threadId": loaded}) == {}
            first = await b.next_notification(where=of_thread(loaded))
            second = await b.next_notification(where=of_thread(loaded))
            assert (first["method"], first["params"]["status"]) == (
                "thread/status/changed",
                NOT_LOADED,
            )
            assert second == {
                "jsonrpc": "2.0",
                "method": "thread/archived",
                "params": {"threadId": loaded},
            }
            # Archiving a stored thread: only thread/archived.
            assert await a.request("thread/archive", {"threadId": stored}) == {}
            await b.next_notification("thread/archived", where=of_thread(stored))
            await barrier(a, b)
            assert notified(b, "thread/closed") == []
            assert notified(b, "thread/status/changed", stored) == []
            assert (await a.request("thread/loaded/list"))["data"] == []
            assert await list_ids(a) == []
            assert set(await list_ids(a, archived=True)) == {loaded, stored}

            refused: list[tuple[str, dict[str, Any]]] = [
                ("turn/start", {"threadId": loaded, "input": [{"type": "text", "text": "hi"}]}),
                ("thread/resume", {"threadId": loaded}),
                ("turn/start", {"threadId": stored, "input": [{"type": "text", "text": "hi"}]}),
                ("thread/resume", {"threadId": stored}),
            ]
            for method, params in refused:
                error = await rpc_error(a, method, params)
                assert (error.code, error.kind) == (-32600, "threadArchived"), method
                assert params["threadId"] in error.message

            result = await a.request("thread/unarchive", {"threadId": loaded})
            assert result["thread"]["id"] == loaded
            assert result["thread"]["status"] == NOT_LOADED
            assert (await b.next_notification("thread/unarchived"))["params"] == {
                "threadId": loaded
            }
            assert await list_ids(a) == [loaded]
            assert await list_ids(a, archived=True) == [stored]
            resumed = await a.request("thread/resume", {"threadId": loaded})
            assert resumed["thread"]["status"] == IDLE
            _, events = await run_turn(a, loaded, "/say back")
            assert events[-2]["params"]["turn"]["status"] == "completed"


async def test_archive_interrupts_a_running_turn(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("archiver")
            recorder = Recorder(client)
            thread_id = await new_thread(client)
            turn_id = await start_turn(client, thread_id, "/say before\n/sleep 30")
            await client.next_notification(
                "item/completed", where=lambda p: p["item"]["type"] == "agentMessage"
            )
            assert await client.request("thread/archive", {"threadId": thread_id}) == {}
            # The subscriber saw the turn end interrupted, before the archive response.
            events = await collect_until(client, thread_id, "thread/archived")
            done = [e for e in events if e["method"] == "turn/completed"]
            assert [e["params"]["turn"]["status"] for e in done] == ["interrupted"]
            assert recorder.notification_index("turn/completed") < recorder.answer_index(
                "thread/archive"
            )
            thread = await stored_thread(client, thread_id)
            assert [t["status"] for t in thread["turns"]] == ["interrupted"]
            assert thread["turns"][0]["id"] == turn_id
            assert [i["type"] for i in thread["turns"][0]["items"]] == [
                "userMessage",
                "agentMessage",
            ]
            assert thread["status"] == NOT_LOADED


async def collect_until(client: Client, thread_id: str, method: str) -> list[dict[str, Any]]:
    events = []
    while True:
        msg = await client.next_notification(where=of_thread(thread_id))
        events.append(msg)
        if msg["method"] == method:
            return events


# --- thread/unsubscribe (§5.7, §8.4) ----------------------------------------------------


async def test_unsubscribe_statuses_and_close_broadcasts(connect_shared: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect_shared() as a, connect_shared() as b:
            await a.initialize("a")
            await b.initialize("b")
            unsubscribe = "thread/unsubscribe"
            assert await a.request(unsubscribe, {"threadId": new_uuid()}) == {"status": "notLoaded"}
            thread_id = await new_thread(a)
            assert await b.request(unsubscribe, {"threadId": thread_id}) == {
                "status": "notSubscribed"
            }
            # Two subscribers: the first to leave does not close the thread.
            await b.request("thread/resume", {"threadId": thread_id})
            assert await a.request(unsubscribe, {"threadId": thread_id}) == {
                "status": "unsubscribed"
            }
            assert await a.request(unsubscribe, {"threadId": thread_id}) == {
                "status": "notSubscribed"
            }
            assert (await a.request("thread/loaded/list"))["data"] == [thread_id]
            # a no longer gets the thread's turn traffic.
            await run_turn(b, thread_id, "/say only b")
            await barrier(a)
            assert notified(a, "turn/started") == [] and notified(a, "item/completed") == []
            a.drain_notifications()  # the status broadcasts of b's turn

            # The last subscriber leaving closes it: notLoaded, then thread/closed, broadcast
            # after the response.
            recorder_b = Recorder(b)
            assert await b.request(unsubscribe, {"threadId": thread_id}) == {
                "status": "unsubscribed"
            }
            for client in (a, b):
                changed = await client.next_notification(where=of_thread(thread_id))
                closed = await client.next_notification(where=of_thread(thread_id))
                assert changed["method"] == "thread/status/changed"
                assert changed["params"] == {"threadId": thread_id, "status": NOT_LOADED}
                assert closed["method"] == "thread/closed"
                assert closed["params"] == {"threadId": thread_id}
            assert recorder_b.answer_index(unsubscribe) < recorder_b.notification_index(
                "thread/closed"
            )
            assert (await a.request("thread/loaded/list"))["data"] == []
            assert await b.request(unsubscribe, {"threadId": thread_id}) == {
                "status": "notLoaded"
            }  # stored, not in memory
            assert (await stored_thread(a, thread_id))["status"] == NOT_LOADED


async def test_unsubscribe_closing_a_running_turn_stores_it_interrupted(
    connect: ConnectFactory,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("leaver")
            thread_id = await new_thread(client)
            turn_id = await start_turn(client, thread_id, "/sleep 30")
            await client.next_notification("turn/started", where=of_thread(thread_id))
            await unload(client, thread_id)
            thread = await stored_thread(client, thread_id)
            assert [(t["id"], t["status"]) for t in thread["turns"]] == [(turn_id, "interrupted")]


# --- bad thread ids (§9) ----------------------------------------------------------------

THREAD_METHODS: list[tuple[str, dict[str, Any]]] = [
    ("thread/resume", {}),
    ("thread/read", {"includeTurns": True}),
    ("thread/archive", {}),
    ("thread/unarchive", {}),
    ("thread/unsubscribe", {}),
    ("thread/name/set", {"name": "n"}),
    ("turn/start", {"input": [{"type": "text", "text": "hi"}]}),
    ("turn/interrupt", {"turnId": "0199a000-0000-7000-8000-000000000000"}),
]


async def test_invalid_thread_id_and_thread_not_found(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("ids")
            for method, extra in THREAD_METHODS:
                error = await rpc_error(client, method, {"threadId": "not-a-uuid", **extra})
                assert (error.code, error.kind) == (-32600, "invalidThreadId"), method
                assert "not-a-uuid" in error.message

                unknown = new_uuid()
                if method == "thread/unsubscribe":
                    result = await client.request(method, {"threadId": unknown})
                    assert result == {"status": "notLoaded"}
                    continue
                error = await rpc_error(client, method, {"threadId": unknown, **extra})
                assert (error.code, error.kind) == (-32600, "threadNotFound"), method
                assert unknown in error.message
                error = await rpc_error(client, method, {"threadId": 42, **extra})
                assert error_paths(error) == {"threadId"}, method
            assert await list_ids(client) == []
            assert client.notifications == []


# --- ephemeral threads (§4.1) -----------------------------------------------------------


async def test_ephemeral_thread_is_never_listed_or_stored(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("ephemeral")
            result = await start_thread(client, ephemeral=True)
            thread_id = result["thread"]["id"]
            assert result["thread"]["ephemeral"] is True
            note = await client.next_notification("thread/started")
            assert note["params"]["thread"]["ephemeral"] is True
            durable = await new_thread(client)
            _, events = await run_turn(client, thread_id, "/say fleeting")
            assert events[-2]["params"]["turn"]["status"] == "completed"
            assert (await stored_thread(client, thread_id))["ephemeral"] is True
            assert await list_ids(client) == [durable]
            assert (await stored_thread(client, durable))["ephemeral"] is False
            assert (await client.request("thread/loaded/list"))["data"] == sorted(
                [thread_id, durable]
            )
            await unload(client, thread_id)
            error = await rpc_error(client, "thread/read", {"threadId": thread_id})
            assert error.kind == "threadNotFound"
            assert (await client.request("thread/loaded/list"))["data"] == [durable]


# --- thread/resume (§5.2), single connection ---------------------------------------------


async def test_resume_loads_subscribes_and_overrides_settings(
    connect_shared: ConnectFactory, tmp_path: Path
) -> None:
    cwd = str(tmp_path)
    with trio.fail_after(TIMEOUT):
        async with connect_shared() as a, connect_shared() as b:
            await a.initialize("a")
            await b.initialize("b")
            thread_id = await new_thread(a, cwd=cwd)
            _, events = await run_turn(a, thread_id, "/say stored")
            stored_turns = (await stored_thread(a, thread_id))["turns"]
            await unload(a, thread_id)
            await barrier(b)
            b.drain_notifications()

            result = await a.request(
                "thread/resume",
                {"threadId": thread_id, "approvalPolicy": "never", "sandbox": "read-only"},
            )
            assert result["thread"]["turns"] == stored_turns
            assert result["thread"]["status"] == IDLE
            assert (result["approvalPolicy"], result["sandbox"], result["cwd"]) == (
                "never",
                {"type": "readOnly"},
                cwd,
            )
            assert (result["model"], result["modelProvider"]) == ("script", "builtin")
            change = await b.next_notification("thread/status/changed")
            assert change["params"] == {"threadId": thread_id, "status": IDLE}
            assert (await a.request("thread/loaded/list"))["data"] == [thread_id]

            # Resuming again while subscribed is allowed; events still arrive once.
            again = await a.request("thread/resume", {"threadId": thread_id})
            assert again["thread"]["turns"] == stored_turns
            assert again["approvalPolicy"] == "never"
            await barrier(b)
            assert notified(b, "thread/status/changed") == []  # no real change
            _, events = await run_turn(a, thread_id, "/write blocked.txt no")
            assert [e["method"] for e in events].count("turn/started") == 1
            assert [i["status"] for i in events_items(events, "fileChange")] == ["failed"]
            assert not (tmp_path / "blocked.txt").exists()

            # A thread whose last turn failed resumes as systemError.
            await run_turn(a, thread_id, "/fail bad")
            await unload(a, thread_id)
            await barrier(b)
            b.drain_notifications()
            result = await a.request("thread/resume", {"threadId": thread_id})
            assert result["thread"]["status"] == {"type": "systemError"}
            change = await b.next_notification("thread/status/changed")
            assert change["params"]["status"] == {"type": "systemError"}


def events_items(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [
        e["params"]["item"]
        for e in events
        if e["method"] == "item/completed" and e["params"]["item"]["type"] == kind
    ]


# --- §4.1: preview and updatedAt ---------------------------------------------------------


async def test_preview_is_the_first_line_of_the_first_text(connect: ConnectFactory) -> None:
    long_line = "L" * 250
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("preview")
            thread_id = await new_thread(client)
            user_input = [
                {"type": "image", "url": "https://example.com/x.png"},
                {"type": "text", "text": f"{long_line}\n/say second line"},
                {"type": "text", "text": "other text"},
            ]
            await run_turn(client, thread_id, user_input)
            assert (await stored_thread(client, thread_id))["preview"] == "L" * 200
            await run_turn(client, thread_id, "a later turn")
            listed = (await client.request("thread/list"))["data"]
            assert listed[0]["preview"] == "L" * 200  # set by the first turn only


async def test_updated_at_moves_on_turns_archive_and_unarchive(
    server: Server, schema_checker: SchemaChecker
) -> None:
    with trio.fail_after(TIMEOUT):
        async with server.connect() as client:
            client.observer = schema_checker.check
            await client.initialize("clock")
            started = (await start_thread(client))["thread"]
            thread_id = started["id"]
            last = started["updatedAt"]
            steps: list[tuple[str, str, dict[str, Any]]] = [
                ("turn", "/say tick", {}),
                ("thread/archive", "", {}),
                ("thread/unarchive", "", {}),
            ]
            for method, script, extra in steps:
                await next_second(last)
                before = int(time.time())
                if method == "turn":
                    await run_turn(client, thread_id, script)
                else:
                    await client.request(method, {"threadId": thread_id, **extra})
                after = int(time.time())
                updated = (await stored_thread(client, thread_id, turns=False))["updatedAt"]
                assert before <= updated <= after and updated > last, method
                last = updated
            assert (await stored_thread(client, thread_id))["createdAt"] == started["createdAt"]
