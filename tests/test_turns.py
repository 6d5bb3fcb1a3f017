"""Turns, items, approvals and the builtin agent (PROTOCOL.md §4.3-§4.5, §5.9, §5.10, §6,
§7, §10) against a real server."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
from shapes import MS, agent_message, check_ms, completed_params, started_params, timed, turn_shape
from threads_support import (
    TIMEOUT,
    Message,
    Recorder,
    assert_well_ordered,
    collect_turn,
    completed_items,
    completed_turn,
    deltas,
    error_paths,
    methods,
    new_thread,
    new_uuid,
    rpc_error,
    run_turn,
    start_turn,
    stored_thread,
    text_input,
    unload,
)

from appserver.client import Client, RpcError
from appserver.server import Server

from conftest import ConnectFactory
from support import SchemaChecker

IDLE = {"type": "idle"}
ACTIVE = {"type": "active", "activeFlags": []}
WAITING = {"type": "active", "activeFlags": ["waitingOnApproval"]}
SYSTEM_ERROR = {"type": "systemError"}
MAX_CHARS = 1_048_576
COMMAND_APPROVAL = "item/commandExecution/requestApproval"
FILE_APPROVAL = "item/fileChange/requestApproval"


@pytest.fixture
async def client(server: Server, schema_checker: SchemaChecker) -> AsyncIterator[Client]:
    """An initialized in-process client (memory transport), schema-checked."""
    async with server.connect() as c:
        c.observer = schema_checker.check
        await c.initialize("turns")
        yield c


def of_type(events: list[Message], kind: str) -> list[Message]:
    return [i for i in completed_items(events) if i["type"] == kind]


def agent_texts(events: list[Message]) -> list[str]:
    return [i["text"] for i in of_type(events, "agentMessage")]


def item_started(kind: str) -> Any:
    return lambda p: p["item"]["type"] == kind


# --- §6: the order of one turn ----------------------------------------------------------


async def test_simple_turn_notification_order(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as c:
            await c.initialize("order")
            thread_id = await new_thread(c)
            await c.next_notification("thread/started")
            user_input = text_input("/say hello world")
            turn_id, events = await run_turn(c, thread_id, user_input)
            await c.request("thread/loaded/list")  # barrier: nothing else arrived
            assert c.notifications == []
    assert methods(events) == [
        "thread/status/changed",
        "turn/started",
        "item/started",
        "item/completed",
        "item/started",
        "item/agentMessage/delta",
        "item/agentMessage/delta",
        "item/completed",
        "turn/completed",
        "thread/status/changed",
    ]
    params = [e["params"] for e in events]
    assert params[0] == {"threadId": thread_id, "status": ACTIVE}
    assert timed(params[1]) == {
        "threadId": thread_id,
        "turn": turn_shape(turn_id, "inProgress", "notLoaded"),
    }
    user = params[2]["item"]
    assert started_params(params[2]) == {
        "threadId": thread_id,
        "turnId": turn_id,
        "startedAtMs": MS,
        "item": {
            "id": user["id"],
            "type": "userMessage",
            "clientId": None,
            "content": user_input,
            "startedAtMs": MS,
            "completedAtMs": None,
        },
    }
    user_done = params[3]["item"]
    assert completed_params(params[3], params[2]) == {
        "threadId": thread_id,
        "turnId": turn_id,
        "completedAtMs": MS,
        "contentTokenCount": None,
        "item": {**timed(user), "completedAtMs": MS},
    }
    assert {**user_done, "completedAtMs": None} == user
    agent_id = params[4]["item"]["id"]
    assert started_params(params[4]) == {
        "threadId": thread_id,
        "turnId": turn_id,
        "startedAtMs": MS,
        "item": {**agent_message(agent_id, ""), "startedAtMs": MS, "completedAtMs": None},
    }
    assert [p["delta"] for p in params[5:7]] == ["hello ", "world"]
    assert all(
        p == {"threadId": thread_id, "turnId": turn_id, "itemId": agent_id, "delta": p["delta"]}
        for p in params[5:7]
    )
    agent = params[7]["item"]
    assert completed_params(params[7], params[4]) == {
        "threadId": thread_id,
        "turnId": turn_id,
        "completedAtMs": MS,
        "contentTokenCount": None,
        "item": {**timed(params[4]["item"]), "text": "hello world", "completedAtMs": MS},
    }
    assert agent == {
        **params[4]["item"],
        "text": "hello world",
        "completedAtMs": params[7]["completedAtMs"],
    }
    # Times follow the order of events; the turn's span covers its items.
    assert (
        params[1]["turn"]["startedAt"] * 1000
        <= user["startedAtMs"]
        <= user_done["completedAtMs"]
        <= agent["startedAtMs"]
        <= agent["completedAtMs"]
        < (params[8]["turn"]["completedAt"] + 1) * 1000
    )
    # A completed turn's turn/completed carries its final answer (the summary view).
    assert params[8]["turn"]["items"] == [agent]
    assert params[8]["turn"]["startedAt"] == params[1]["turn"]["startedAt"]
    assert timed(params[8]) == {
        "threadId": thread_id,
        "turn": turn_shape(turn_id, "completed", "summary", [agent]),
    }
    assert params[9] == {"threadId": thread_id, "status": IDLE}
    assert user["id"] != agent_id


# --- §10: the builtin directives --------------------------------------------------------


async def test_say_and_plain_lines(client: Client) -> None:
    with trio.fail_after(TIMEOUT):
        thread_id = await new_thread(client)
        _, events = await run_turn(client, thread_id, "/say  spaced   out words ")
        assert_well_ordered(events)
        [item] = of_type(events, "agentMessage")
        assert item["text"] == "spaced   out words "
        pieces = [e["params"]["delta"] for e in events if e["method"] == "item/agentMessage/delta"]
        assert pieces == ["spaced   ", "out ", "words "]

        # Plain lines are answered first, joined, whatever their place among directives.
        _, events = await run_turn(
            client, thread_id, "/say last\nfirst line\n\n   \nsecond line\n/say later"
        )
        assert_well_ordered(events)
        assert agent_texts(events) == ["You said: first line\nsecond line", "last", "later"]

        # No text input at all: `You said: `, the input stored as given.
        image = [{"type": "image", "url": "https://example.com/a.png"}]
        turn_id, events = await run_turn(client, thread_id, image)
        assert agent_texts(events) == ["You said: "]
        stored = (await stored_thread(client, thread_id))["turns"][-1]
        assert stored["id"] == turn_id and stored["items"][0]["content"] == image


async def test_think_streams_a_reasoning_summary(client: Client) -> None:
    with trio.fail_after(TIMEOUT):
        thread_id = await new_thread(client)
        _, events = await run_turn(client, thread_id, "/think weighing the options carefully")
        assert_well_ordered(events)
        started = [e["params"]["item"] for e in events if e["method"] == "item/started"]
        assert started[1]["type"] == "reasoning" and started[1]["summary"] == []
        [item] = of_type(events, "reasoning")
        assert timed(item) == {
            "id": started[1]["id"],
            "type": "reasoning",
            "summary": ["weighing the options carefully"],
            "content": [],
            "startedAtMs": MS,
            "completedAtMs": MS,
        }
        assert item["startedAtMs"] == started[1]["startedAtMs"]
        summary_deltas = [
            e["params"] for e in events if e["method"] == "item/reasoning/summaryTextDelta"
        ]
        assert len(summary_deltas) == 4
        assert all(p["summaryIndex"] == 0 and p["itemId"] == item["id"] for p in summary_deltas)
        assert deltas(events, item["id"], "item/reasoning/summaryTextDelta") == item["summary"][0]


async def test_stream_deltas_add_up_to_the_text(client: Client) -> None:
    with trio.fail_after(TIMEOUT):
        thread_id = await new_thread(client)
        _, events = await run_turn(client, thread_id, "/stream 2000 3\n/stream 5")
        assert_well_ordered(events)
        big, small = of_type(events, "agentMessage")
        big_deltas = [
            e["params"]["delta"]
            for e in events
            if e["method"] == "item/agentMessage/delta" and e["params"]["itemId"] == big["id"]
        ]
        assert len(big_deltas) == 2000 and {len(d) for d in big_deltas} == {3}
        assert "".join(big_deltas) == big["text"] and len(big["text"]) == 6000
        assert deltas(events, small["id"]) == small["text"] and len(small["text"]) == 40
        assert [
            len(e["params"]["delta"]) for e in events if e["params"].get("itemId") == small["id"]
        ] == [8] * 5


async def test_sleep_and_unknown_directive(client: Client) -> None:
    with trio.fail_after(TIMEOUT):
        thread_id = await new_thread(client)
        _, events = await run_turn(client, thread_id, "/sleep 0.01")
        assert completed_turn(events)["status"] == "completed"
        assert [i["type"] for i in completed_items(events)] == ["userMessage"]

        _, events = await run_turn(client, thread_id, "/say ok\n/dance wildly\n/say never")
        turn = completed_turn(events)
        assert turn["status"] == "failed" and "/dance" in turn["error"]["message"]
        assert agent_texts(events) == ["ok"]


async def test_user_message_content_is_the_input_exactly(client: Client) -> None:
    user_input: list[dict[str, Any]] = [
        {
            "type": "text",
            "text": "look at these",
            "text_elements": [{"byteRange": {"start": 0, "end": 4}, "placeholder": "look"}],
        },
        {"type": "image", "url": "https://example.com/cat.png"},
        {"type": "localImage", "path": "/tmp/cat.png"},
        {"type": "text", "text": "/say and these", "text_elements": []},
    ]
    with trio.fail_after(TIMEOUT):
        thread_id = await new_thread(client)
        turn_id, events = await run_turn(
            client, thread_id, user_input, clientUserMessageId="client-message-1"
        )
        user = next(e["params"]["item"] for e in events if e["method"] == "item/started")
        assert user["type"] == "userMessage" and user["content"] == user_input
        assert user["clientId"] == "client-message-1"
        done = completed_items(events)[0]
        assert timed(done) == {**timed(user), "completedAtMs": MS}
        assert {**done, "completedAtMs": None} == user
        assert agent_texts(events) == ["You said: look at these", "and these"]
        stored = (await stored_thread(client, thread_id))["turns"]
        assert stored[0]["id"] == turn_id and stored[0]["items"][0] == done


# --- §4.2: status transitions, /fail -----------------------------------------------------


async def test_fail_sets_system_error_until_the_next_turn(client: Client) -> None:
    with trio.fail_after(TIMEOUT):
        thread_id = await new_thread(client)
        turn_id, events = await run_turn(client, thread_id, "/say partial\n/fail it broke")
        assert_well_ordered(events)
        error = {"message": "it broke", "codexErrorInfo": None, "additionalDetails": None}
        names = methods(events)
        assert names[0] == "thread/status/changed" and events[0]["params"]["status"] == ACTIVE
        assert names[-3:] == ["error", "turn/completed", "thread/status/changed"]
        assert names.index("error") > max(i for i, n in enumerate(names) if n == "item/completed")
        assert events[-3]["params"] == {
            "error": error,
            "willRetry": False,
            "threadId": thread_id,
            "turnId": turn_id,
        }
        # An ended turn that did not complete carries no items (the notLoaded view).
        assert timed(events[-2]["params"]["turn"]) == turn_shape(
            turn_id, "failed", "notLoaded", [], error
        )
        assert events[-1]["params"] == {"threadId": thread_id, "status": SYSTEM_ERROR}
        assert agent_texts(events) == ["partial"]
        thread = await stored_thread(client, thread_id)
        assert thread["status"] == SYSTEM_ERROR
        assert thread["turns"][0]["status"] == "failed" and thread["turns"][0]["error"] == error
        listed = (await client.request("thread/list"))["data"]
        assert listed[0]["status"] == SYSTEM_ERROR

        _, events = await run_turn(client, thread_id, "/say recovered")
        statuses = [e["params"]["status"] for e in events if e["method"] == "thread/status/changed"]
        assert statuses == [ACTIVE, IDLE]
        assert completed_turn(events)["error"] is None
        assert (await stored_thread(client, thread_id, turns=False))["status"] == IDLE


# --- §7: approvals under the default policy (on-request) ---------------------------------


async def _approval_for_run(
    client: Client, thread_id: str, turn_id: str, command: str, cwd: str
) -> tuple[Any, str]:
    """Wait for the command item and its approval request; check the request's params and
    that the item/started came first. Returns (request, item id)."""
    request = await client.next_server_request(COMMAND_APPROVAL)
    started = await client.next_notification("item/started", where=item_started("commandExecution"))
    item = started["params"]["item"]
    assert item["status"] == "inProgress" and item["command"] == command
    assert timed({k: v for k, v in request.params.items() if k != "reason"}) == {
        "threadId": thread_id,
        "turnId": turn_id,
        "itemId": item["id"],
        "command": command,
        "cwd": cwd,
        "commandActions": [{"type": "unknown", "command": command}],
        "startedAtMs": MS,
        "kind": "command",
    }
    assert item["startedAtMs"] <= request.params["startedAtMs"]
    assert request.params.get("reason") is None
    assert isinstance(request.id, int)
    return request, item["id"]


async def test_run_approval_accept(connect: ConnectFactory, tmp_path: Path) -> None:
    cwd = str(tmp_path)
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("approver")
            recorder = Recorder(client)
            thread_id = await new_thread(client, cwd=cwd)
            turn_id = await start_turn(client, thread_id, "/run echo hi")
            request, item_id = await _approval_for_run(client, thread_id, turn_id, "echo hi", cwd)
            assert _command_started_before_request(recorder, request.id)
            waiting = await client.next_notification(
                "thread/status/changed", where=lambda p: p["status"] == WAITING
            )
            assert waiting["params"]["threadId"] == thread_id
            assert (await stored_thread(client, thread_id, turns=False))["status"] == WAITING
            await client.respond(request.id, {"decision": "accept"})
            await collect_turn(client, thread_id, turn_id)
            events = recorder.thread_events(thread_id)
            assert_well_ordered(events)
            names = methods(events)
            resolved = names.index("serverRequest/resolved")
            assert events[resolved]["params"] == {"threadId": thread_id, "requestId": request.id}
            [command] = of_type(events, "commandExecution")
            done = next(
                i
                for i, e in enumerate(events)
                if e["method"] == "item/completed" and e["params"]["item"]["id"] == item_id
            )
            assert resolved < done
            assert deltas(events, item_id, "item/commandExecution/outputDelta") == "hi\n"
            assert command["status"] == "completed" and command["exitCode"] == 0
            assert command["aggregatedOutput"] == "hi\n" and command["cwd"] == cwd
            assert command["processId"] is not None and isinstance(command["durationMs"], int)
            assert command["source"] == "agent"
            assert completed_turn(events)["status"] == "completed"


def _command_started_before_request(recorder: Recorder, request_id: int | str) -> bool:
    started = recorder.index(
        lambda m, _: (
            m.get("method") == "item/started" and m["params"]["item"]["type"] == "commandExecution"
        )
    )
    asked = recorder.index(lambda m, _: "method" in m and m.get("id") == request_id)
    return started < asked


@pytest.mark.parametrize(
    ("answer", "item_status", "turn_status", "goes_on"),
    [
        ({"decision": "decline"}, "declined", "completed", True),
        ({"decision": "maybe later"}, "declined", "completed", True),
        ({"decision": "cancel"}, "declined", "interrupted", False),
        (None, "failed", "completed", True),  # a JSON-RPC error answer
    ],
)
async def test_run_approval_refused(
    client: Client,
    tmp_path: Path,
    answer: dict[str, str] | None,
    item_status: str,
    turn_status: str,
    goes_on: bool,
) -> None:
    marker = tmp_path / "ran"
    command = f"touch {marker}"
    with trio.fail_after(TIMEOUT):
        recorder = Recorder(client)
        thread_id = await new_thread(client, cwd=str(tmp_path))
        turn_id = await start_turn(client, thread_id, f"/run {command}\n/say afterwards")
        request, item_id = await _approval_for_run(
            client, thread_id, turn_id, command, str(tmp_path)
        )
        assert _command_started_before_request(recorder, request.id)
        if answer is None:
            await client.respond_error(request.id, -32000, "client refuses")
        else:
            await client.respond(request.id, answer)
        await collect_turn(client, thread_id, turn_id)
        events = recorder.thread_events(thread_id)
        assert_well_ordered(events)
        [item] = of_type(events, "commandExecution")
        assert item["id"] == item_id and item["status"] == item_status
        assert item["exitCode"] is None
        assert not marker.exists()
        assert completed_turn(events)["status"] == turn_status
        assert agent_texts(events) == (["afterwards"] if goes_on else [])
        assert "serverRequest/resolved" in methods(events)


async def test_policy_never_runs_without_asking_and_failures_report_exit_code(
    connect: ConnectFactory, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as c:
            await c.initialize("never")
            recorder = Recorder(c)
            thread_id = await new_thread(c, cwd=str(tmp_path), approvalPolicy="never")
            _, events = await run_turn(
                c, thread_id, "/run echo hi && pwd\n/run false\n/run echo oops >&2; exit 3"
            )
            assert_well_ordered(events)
            ok, failed, loud = of_type(events, "commandExecution")
            assert (ok["status"], ok["exitCode"]) == ("completed", 0)
            assert ok["aggregatedOutput"] == f"hi\n{tmp_path}\n"
            assert (failed["status"], failed["exitCode"]) == ("failed", 1)
            assert (loud["status"], loud["exitCode"], loud["aggregatedOutput"]) == (
                "failed",
                3,
                "oops\n",
            )
            assert completed_turn(events)["status"] == "completed"
            assert recorder.server_requests() == []


# --- /write ------------------------------------------------------------------------------


async def test_write_creates_and_updates_files(client: Client, tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    with trio.fail_after(TIMEOUT):
        recorder = Recorder(client)
        thread_id = await new_thread(client, cwd=str(tmp_path), approvalPolicy="never")
        _, events = await run_turn(client, thread_id, "/write notes.txt hello world")
        assert_well_ordered(events)
        assert target.read_text() == "hello world\n"
        [item] = of_type(events, "fileChange")
        assert item["status"] == "completed"
        [change] = item["changes"]
        assert change["path"] == str(target.resolve()) and change["kind"] == {"type": "add"}
        assert "+hello world\n" in change["diff"]
        assert deltas(events, item["id"], "item/fileChange/outputDelta") != ""

        _, events = await run_turn(client, thread_id, "/write notes.txt goodbye")
        assert target.read_text() == "goodbye\n"
        [item] = of_type(events, "fileChange")
        assert item["changes"][0]["kind"] == {"type": "update", "move_path": None}
        assert "-hello world\n" in item["changes"][0]["diff"]
        assert "+goodbye\n" in item["changes"][0]["diff"]

        # workspace-write: outside cwd fails without asking, nothing written.
        _, events = await run_turn(client, thread_id, "/write ../escaped.txt nope")
        [item] = of_type(events, "fileChange")
        assert item["status"] == "failed"
        assert not (tmp_path.parent / "escaped.txt").exists()
        assert recorder.server_requests() == []


async def test_write_approval_accept_and_decline(client: Client, tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        recorder = Recorder(client)
        thread_id = await new_thread(client, cwd=str(tmp_path))
        turn_id = await start_turn(client, thread_id, "/write a.txt A\n/write b.txt B")
        for decision in ("accept", "decline"):
            request = await client.next_server_request(FILE_APPROVAL)
            started = await client.next_notification(
                "item/started", where=item_started("fileChange")
            )
            assert timed(request.params) == {
                "threadId": thread_id,
                "turnId": turn_id,
                "itemId": started["params"]["item"]["id"],
                "reason": None,
                "grantRoot": None,
                "startedAtMs": MS,
            }
            assert started["params"]["startedAtMs"] <= request.params["startedAtMs"]
            await client.respond(request.id, {"decision": decision})
        await collect_turn(client, thread_id, turn_id)
        events = recorder.thread_events(thread_id)
        assert_well_ordered(events)
        assert [i["status"] for i in of_type(events, "fileChange")] == ["completed", "declined"]
        assert (tmp_path / "a.txt").read_text() == "A\n"
        assert not (tmp_path / "b.txt").exists()


# --- turn/interrupt (§5.10) --------------------------------------------------------------


async def test_interrupt_sleep_answers_after_turn_completed(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as c:
            await c.initialize("interrupt")
            recorder = Recorder(c)
            thread_id = await new_thread(c)
            turn_id = await start_turn(c, thread_id, "/say before\n/sleep 30\n/say never")
            await c.next_notification(
                "item/completed", where=lambda p: p["item"]["type"] == "agentMessage"
            )
            # Mid-turn snapshot: the running turn with its items so far; status active.
            snapshot = await stored_thread(c, thread_id)
            assert snapshot["status"] == ACTIVE
            [running] = snapshot["turns"]
            assert (running["id"], running["status"], running["error"]) == (
                turn_id,
                "inProgress",
                None,
            )
            assert [i["type"] for i in running["items"]] == ["userMessage", "agentMessage"]
            assert running["items"][1]["text"] == "before"
            listed = (await c.request("thread/list"))["data"]
            assert listed[0]["status"] == ACTIVE
            interrupt = {"threadId": thread_id, "turnId": turn_id}
            assert await c.request("turn/interrupt", interrupt) == {}
            assert recorder.notification_index("turn/completed") < recorder.answer_index(
                "turn/interrupt"
            )
            await collect_turn(c, thread_id, turn_id)
            events = recorder.thread_events(thread_id)
            assert_well_ordered(events)
            assert completed_turn(events)["status"] == "interrupted"
            assert completed_turn(events)["error"] is None
            assert events[-1]["params"]["status"] == IDLE
            assert agent_texts(events) == ["before"]
            thread = await stored_thread(c, thread_id)
            assert [t["status"] for t in thread["turns"]] == ["interrupted"]
            assert thread["status"] == IDLE
            error = await rpc_error(c, "turn/interrupt", interrupt)
            assert (error.code, error.kind) == (-32600, "turnNotActive")
            assert turn_id in error.message


async def test_interrupt_kills_a_running_command(connect: ConnectFactory, tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as c:
            await c.initialize("killer")
            recorder = Recorder(c)
            thread_id = await new_thread(c, cwd=str(tmp_path), approvalPolicy="never")
            turn_id = await start_turn(c, thread_id, "/run echo $$; exec sleep 30")
            delta = await c.next_notification("item/commandExecution/outputDelta")
            pid = int(delta["params"]["delta"].split()[0])
            os.kill(pid, 0)  # running
            assert (
                await c.request("turn/interrupt", {"threadId": thread_id, "turnId": turn_id}) == {}
            )
            await collect_turn(c, thread_id, turn_id)
            events = recorder.thread_events(thread_id)
            assert_well_ordered(events)
            assert completed_turn(events)["status"] == "interrupted"
            [item] = of_type(events, "commandExecution")
            assert item["status"] != "completed"
            assert item["aggregatedOutput"] == f"{pid}\n"
            # The process is gone (allowing the server a moment to reap it).
            while True:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                await trio.sleep(0.02)


# --- turn/start errors (§5.9) ------------------------------------------------------------


async def test_turn_already_active_and_turn_not_active(client: Client) -> None:
    with trio.fail_after(TIMEOUT):
        thread_id = await new_thread(client)
        turn_id = await start_turn(client, thread_id, "/sleep 30")
        error = await rpc_error(
            client, "turn/start", {"threadId": thread_id, "input": text_input("/say hi")}
        )
        assert (error.code, error.kind) == (-32600, "turnAlreadyActive")
        assert thread_id in error.message
        other = new_uuid()
        error = await rpc_error(client, "turn/interrupt", {"threadId": thread_id, "turnId": other})
        assert (error.code, error.kind) == (-32600, "turnNotActive") and other in error.message
        await client.request("turn/interrupt", {"threadId": thread_id, "turnId": turn_id})
        events = await collect_turn(client, thread_id, turn_id)
        assert completed_turn(events)["status"] == "interrupted"
        _, events = await run_turn(client, thread_id, "/say next")
        assert completed_turn(events)["status"] == "completed"


async def test_thread_not_loaded_after_unsubscribe(client: Client) -> None:
    with trio.fail_after(TIMEOUT):
        thread_id = await new_thread(client)
        await unload(client, thread_id)
        params = {"threadId": thread_id, "input": text_input("/say hi")}
        error = await rpc_error(client, "turn/start", params)
        assert (error.code, error.kind) == (-32600, "threadNotLoaded")
        assert thread_id in error.message
        await client.request("thread/resume", {"threadId": thread_id})
        _, events = await run_turn(client, thread_id, "/say hi")
        assert agent_texts(events) == ["hi"]


async def test_input_too_large_and_bad_input(client: Client, tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        recorder = Recorder(client)
        thread_id = await new_thread(client, cwd=str(tmp_path))
        half = MAX_CHARS // 2
        too_big = text_input("x" * half, "y" * (half + 1))
        error = await rpc_error(client, "turn/start", {"threadId": thread_id, "input": too_big})
        assert (error.code, error.kind) == (-32602, "inputTooLarge")
        assert error.data["max_chars"] == MAX_CHARS
        assert error.data["actual_chars"] == MAX_CHARS + 1
        # Exactly the limit is accepted; characters count, not bytes.
        at_limit = text_input("/sleep 0", "é" * (MAX_CHARS - len("/sleep 0")))
        _, events = await run_turn(client, thread_id, at_limit)
        assert completed_turn(events)["status"] == "completed"
        assert agent_texts(events) == ["You said: " + "é" * (MAX_CHARS - len("/sleep 0"))]

        # Bad settings are refused before anything changes (§9): the valid
        # approvalPolicy sent along with a bad cwd is not kept.
        for cwd in ["relative", str(tmp_path / "missing")]:
            error = await rpc_error(
                client,
                "turn/start",
                {
                    "threadId": thread_id,
                    "input": text_input("/say no"),
                    "approvalPolicy": "never",
                    "cwd": cwd,
                },
            )
            assert error_paths(error) == {"cwd"}
        error = await rpc_error(
            client,
            "turn/start",
            {"threadId": thread_id, "input": text_input("hi"), "approvalPolicy": "always"},
        )
        assert error_paths(error) == {"approvalPolicy"}
        turn_id = await start_turn(client, thread_id, "/run true")
        request = await client.next_server_request(COMMAND_APPROVAL)  # still on-request
        await client.respond(request.id, {"decision": "accept"})
        await collect_turn(client, thread_id, turn_id)
        assert len(recorder.server_requests()) == 1

        for bad, path in [
            ([], "input"),
            (None, "input"),
            ([{"type": "text", "text": 5}], "input[0].text"),
            ([{"type": "audio", "data": "x"}], "input[0]"),
            ("just a string", "input"),
        ]:
            params: dict[str, Any] = {"threadId": thread_id}
            if bad is not None:
                params["input"] = bad
            error = await rpc_error(client, "turn/start", params)
            assert error_paths(error) == {path}, bad
        thread = await stored_thread(client, thread_id)
        assert len(thread["turns"]) == 2 and thread["status"] == IDLE


# --- turn/start settings persist (§5.9) --------------------------------------------------


async def test_turn_settings_persist_for_later_turns(client: Client, tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    with trio.fail_after(TIMEOUT):
        recorder = Recorder(client)
        thread_id = await new_thread(client, cwd=str(tmp_path))
        await run_turn(client, thread_id, "/say settings", approvalPolicy="never", cwd=str(sub))
        _, events = await run_turn(client, thread_id, "/run pwd")
        [item] = of_type(events, "commandExecution")
        assert (item["status"], item["aggregatedOutput"]) == ("completed", f"{sub}\n")
        assert item["cwd"] == str(sub)
        assert recorder.server_requests() == []
        rejoined = await client.request("thread/resume", {"threadId": thread_id})
        assert rejoined["approvalPolicy"] == "never" and rejoined["cwd"] == str(sub)

        # A sandbox policy given on a turn persists too: read-only refuses writes.
        await run_turn(client, thread_id, "/say ro", sandboxPolicy={"type": "readOnly"})
        _, events = await run_turn(client, thread_id, "/write g.txt y")
        assert of_type(events, "fileChange")[0]["status"] == "failed"
        assert not (sub / "g.txt").exists()
        assert recorder.server_requests() == []


async def test_turn_settings_apply_to_their_own_turn(client: Client, tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    with trio.fail_after(TIMEOUT):
        recorder = Recorder(client)
        thread_id = await new_thread(client, cwd=str(tmp_path))
        turn_id = await start_turn(
            client, thread_id, "/run pwd", approvalPolicy="never", cwd=str(sub)
        )
        try:
            started = await client.next_notification(
                "item/started", where=item_started("commandExecution")
            )
            assert started["params"]["item"]["cwd"] == str(sub)
            events = await collect_turn(client, thread_id, turn_id)
            [item] = of_type(events, "commandExecution")
            assert item["aggregatedOutput"] == f"{sub}\n"
            assert recorder.server_requests() == []
        finally:
            with (
                trio.CancelScope(shield=True),
                trio.move_on_after(5),
                contextlib.suppress(RpcError),
            ):
                await client.request("turn/interrupt", {"threadId": thread_id, "turnId": turn_id})


async def test_turn_events_reach_only_subscribers(
    connect_shared: ConnectFactory,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect_shared() as owner, connect_shared() as starter:
            await owner.initialize("owner")
            await starter.initialize("starter")
            thread_id = await new_thread(owner)
            # turn/start subscribes nobody: the starter only sees broadcasts.
            turn_id = await start_turn(starter, thread_id, "/say for the owner")
            events = await collect_turn(owner, thread_id, turn_id)
            assert agent_texts(events) == ["for the owner"]
            await starter.request("thread/loaded/list")
            assert {n["method"] for n in starter.notifications} == {
                "thread/started",
                "thread/status/changed",
            }
            assert [
                n["params"]["status"]
                for n in starter.notifications
                if n["method"] == "thread/status/changed"
            ] == [ACTIVE, IDLE]


# --- §10 `/run A && B`, §7.1 acceptForSession, §7.3 sandboxes ------------------------------


async def test_run_chain_asks_per_part_just_before_it_runs(client: Client, tmp_path: Path) -> None:
    cwd = str(tmp_path)
    with trio.fail_after(TIMEOUT):
        recorder = Recorder(client)
        thread_id = await new_thread(client, cwd=cwd)
        turn_id = await start_turn(client, thread_id, "/run echo one && echo two && echo three")
        first = await client.next_server_request(COMMAND_APPROVAL)
        assert first.params["command"] == "echo one"
        await client.respond(first.id, {"decision": "accept"})
        # The second part is asked for only after the first has run.
        second = await client.next_server_request(COMMAND_APPROVAL)
        assert second.params["command"] == "echo two"
        assert recorder.index(
            lambda m, _: m.get("method") == "item/commandExecution/outputDelta"
        ) < recorder.index(lambda m, _: m.get("id") == second.id and "method" in m)
        assert second.params["itemId"] == first.params["itemId"]
        approval_ids = {first.params["approvalId"], second.params["approvalId"]}
        assert len(approval_ids) == 2 and all(isinstance(a, str) for a in approval_ids)
        assert timed(
            {k: v for k, v in second.params.items() if k not in ("approvalId", "reason")}
        ) == {
            "threadId": thread_id,
            "turnId": turn_id,
            "itemId": first.params["itemId"],
            "command": "echo two",
            "cwd": cwd,
            "commandActions": [{"type": "unknown", "command": "echo two"}],
            "startedAtMs": MS,
            "kind": "command",
        }
        assert check_ms(first.params["startedAtMs"]) <= second.params["startedAtMs"]
        await client.respond(second.id, {"decision": "decline"})
        await collect_turn(client, thread_id, turn_id)
        events = recorder.thread_events(thread_id)
        assert_well_ordered(events)
        [item] = of_type(events, "commandExecution")
        assert item["status"] == "declined" and item["aggregatedOutput"] == "one\n"
        assert len(recorder.server_requests()) == 2  # "echo three" was never asked for

        # Parts stop at the first non-zero exit: no request for what follows.
        turn_id = await start_turn(client, thread_id, "/run false && echo never")
        request = await client.next_server_request(COMMAND_APPROVAL)
        assert request.params["command"] == "false"
        await client.respond(request.id, {"decision": "accept"})
        events = await collect_turn(client, thread_id, turn_id)
        [item] = of_type(events, "commandExecution")
        assert (item["status"], item["exitCode"], item["aggregatedOutput"]) == ("failed", 1, "")
        assert len(recorder.server_requests()) == 3


async def test_accept_for_session_lasts_while_the_thread_stays_loaded(
    client: Client, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        recorder = Recorder(client)
        thread_id = await new_thread(client, cwd=str(tmp_path))
        turn_id = await start_turn(client, thread_id, "/run echo same")
        request = await client.next_server_request(COMMAND_APPROVAL)
        await client.respond(request.id, {"decision": "acceptForSession"})
        await collect_turn(client, thread_id, turn_id)
        _, events = await run_turn(client, thread_id, "/run echo same")  # not asked again
        assert of_type(events, "commandExecution")[0]["aggregatedOutput"] == "same\n"
        assert len(recorder.server_requests()) == 1

        turn_id = await start_turn(client, thread_id, "/run echo different")
        request = await client.next_server_request(COMMAND_APPROVAL)
        assert request.params["command"] == "echo different"
        await client.respond(request.id, {"decision": "decline"})
        await collect_turn(client, thread_id, turn_id)

        await unload(client, thread_id)
        await client.request("thread/resume", {"threadId": thread_id})
        turn_id = await start_turn(client, thread_id, "/run echo same")
        request = await client.next_server_request(COMMAND_APPROVAL)  # asked again
        assert request.params["command"] == "echo same"
        await client.respond(request.id, {"decision": "accept"})
        events = await collect_turn(client, thread_id, turn_id)
        assert completed_turn(events)["status"] == "completed"


async def test_sandbox_modes_for_commands_and_writes(client: Client, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    with trio.fail_after(TIMEOUT):
        # read-only: commands need approval even under `never`; writes fail unasked.
        thread_id = await new_thread(
            client, cwd=str(work), approvalPolicy="never", sandbox="read-only"
        )
        turn_id = await start_turn(client, thread_id, "/write f.txt x\n/run echo ro")
        request = await client.next_server_request(COMMAND_APPROVAL)
        assert request.params["command"] == "echo ro"
        await client.respond(request.id, {"decision": "accept"})
        events = await collect_turn(client, thread_id, turn_id)
        change, command = of_type(events, "fileChange")[0], of_type(events, "commandExecution")[0]
        assert change["status"] == "failed" and not (work / "f.txt").exists()
        assert command["aggregatedOutput"] == "ro\n"

        # danger-full-access: writes outside cwd are allowed.
        thread_id = await new_thread(
            client, cwd=str(work), approvalPolicy="never", sandbox="danger-full-access"
        )
        _, events = await run_turn(client, thread_id, "/write ../outside.txt free")
        assert of_type(events, "fileChange")[0]["status"] == "completed"
        assert (tmp_path / "outside.txt").read_text() == "free\n"


async def test_interrupt_while_waiting_for_approval_settles_the_request(
    client: Client, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    with trio.fail_after(TIMEOUT):
        recorder = Recorder(client)
        thread_id = await new_thread(client, cwd=str(tmp_path))
        turn_id = await start_turn(client, thread_id, f"/run touch {marker}")
        request = await client.next_server_request(COMMAND_APPROVAL)
        assert (
            await client.request("turn/interrupt", {"threadId": thread_id, "turnId": turn_id}) == {}
        )
        events = recorder.thread_events(thread_id)
        names = methods(events)
        assert names.index("serverRequest/resolved") < names.index("turn/completed")
        assert events[names.index("serverRequest/resolved")]["params"]["requestId"] == request.id
        [item] = of_type(events, "commandExecution")
        assert item["status"] == "declined"
        assert completed_turn(events)["status"] == "interrupted"
        # A late answer is ignored: nothing runs, nothing is answered.
        await client.respond(request.id, {"decision": "accept"})
        _, later = await run_turn(client, thread_id, "/say still fine")
        assert agent_texts(later) == ["still fine"]
        assert not marker.exists()
        thread = await stored_thread(client, thread_id)
        assert thread["turns"][0]["items"][1]["status"] == "declined"
