"""Agents that talk back (issue 15): `item/tool/requestUserInput` (`/ask`), dynamic tools
(`thread/start` `dynamicTools`, `item/tool/call`, `/tool`), `item/permissions/requestApproval`,
`turn/plan/updated` (`/plan`), `turn/diff/updated` (`/write`), `thread/tokenUsage/updated`.

Real servers only: two or three real websocket clients where the routing of PROTOCOL.md
§7.2 matters (every subscriber, first answer wins, only a recipient may answer, replayed on
rejoin with the original id, settled when the turn ends, §7.4), real SQLite files where
the dynamic tools must survive a restart.
"""

from __future__ import annotations

import difflib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from multiclient_support import (
    Peer,
    Recorder,
    is_notification,
    is_server_request,
    params_of,
    read_thread,
    start_turn,
    turn_completed,
)

from appserver.agents.base import TurnContext, agent_message_item
from appserver.client import Client, RpcError, connect_websocket, spawn_stdio
from appserver.server import ServerConfig

from support import SchemaChecker

TIMEOUT = 20
WAITING_ON_USER_INPUT = {"type": "active", "activeFlags": ["waitingOnUserInput"]}
LOOKUP = {
    "type": "function",
    "name": "lookup",
    "description": "Look a word up",
    "inputSchema": {"type": "object", "properties": {"word": {"type": "string"}}},
}
SPACE = {
    "type": "namespace",
    "name": "space",
    "description": "Tools in a namespace",
    "tools": [{**LOOKUP, "name": "find"}],
}


class PermissionAgent:
    """A backend that asks for permissions, then says what it was granted."""

    name = "permission-test"
    model = "permission-test"

    async def run_turn(self, ctx: TurnContext, user_input: Sequence[dict[str, Any]]) -> None:
        item_id = ctx.new_item_id()
        wanted = {"network": {"enabled": True}}
        answer = await ctx.request_permissions(item_id, wanted, "to fetch")  # type: ignore[attr-defined]
        text = "no answer" if answer is None else f"granted for the {answer['scope']}"
        reply = ctx.new_item_id()
        await ctx.item_started(agent_message_item(reply, ""))
        await ctx.item_completed(agent_message_item(reply, text))


class BothAgent:
    """A backend that asks for permissions and for user input at the same time."""

    name = "both-test"
    model = "both-test"

    async def run_turn(self, ctx: TurnContext, user_input: Sequence[dict[str, Any]]) -> None:
        question = {"id": "q1", "header": "H", "question": "Q?", "options": None}
        talk: Any = ctx
        async with trio.open_nursery() as nursery:
            nursery.start_soon(talk.request_permissions, ctx.new_item_id(), {})
            nursery.start_soon(talk.request_user_input, ctx.new_item_id(), [question])


@pytest.fixture
def server_config() -> ServerConfig:
    agents: dict[str, Any] = {"permission-test": PermissionAgent, "both-test": BothAgent}
    return ServerConfig(
        data_dir=None, shutdown_timeout=0.5, agents=agents, builtin_token_usage=True
    )


async def initialize(client: Client, name: str) -> None:
    info = {"name": name, "version": "0"}
    await client.request(
        "initialize", {"clientInfo": info, "capabilities": {"experimentalApi": True}}
    )
    await client.notify("initialized")


@asynccontextmanager
async def peer(url: str, checker: SchemaChecker, name: str) -> AsyncIterator[Peer]:
    """A real websocket client (experimentalApi on), schema-checked and recorded."""
    async with connect_websocket(url) as client:
        log = Recorder(client, checker)
        await initialize(client, name)
        yield Peer(client, log, name)


async def new_thread(client: Client, cwd: Path, **params: Any) -> str:
    result = await client.request("thread/start", {"cwd": str(cwd), **params})
    thread_id: str = result["thread"]["id"]
    return thread_id


async def resume(client: Client, thread_id: str) -> dict[str, Any]:
    result: dict[str, Any] = await client.request("thread/resume", {"threadId": thread_id})
    return result


def completed_items(p: Peer, turn_id: str) -> list[dict[str, Any]]:
    return [
        params_of(m)["item"]
        for m in p.log.notifications()
        if m["method"] == "item/completed" and params_of(m)["turnId"] == turn_id
    ]


def agent_texts(p: Peer, turn_id: str) -> list[str]:
    return [i["text"] for i in completed_items(p, turn_id) if i["type"] == "agentMessage"]


def resolved_before(p: Peer, request_id: int | str, item_id: str | None = None) -> None:
    """§7.2: `serverRequest/resolved` once, before the item's `item/completed` (if any)
    and before `turn/completed`."""
    resolved = p.log.indexes(is_notification("serverRequest/resolved", requestId=request_id))
    assert len(resolved) == 1, f"{p.name}: resolved {len(resolved)} times"
    assert resolved[0] < p.log.index(is_notification("turn/completed"))
    if item_id is not None:
        done = p.log.index(
            lambda m: m.get("method") == "item/completed" and params_of(m)["item"]["id"] == item_id
        )
        assert resolved[0] < done


def unmatched_answers(p: Peer) -> list[dict[str, Any]]:
    return [m for m in p.client.notifications if "method" not in m]


# --- /ask: item/tool/requestUserInput ---------------------------------------------------


async def test_ask_goes_to_every_subscriber_and_the_second_answers_after_the_first_left(
    ws_url: str, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with peer(ws_url, schema_checker, "b") as b, peer(ws_url, schema_checker, "c") as c:
            async with peer(ws_url, schema_checker, "a") as a:
                thread_id = await new_thread(a.client, tmp_path)
                await resume(b.client, thread_id)
                turn_id = await start_turn(a.client, thread_id, "/ask Which colour? | red | blue")
                ra = await a.client.next_server_request()
                assert ra.method == "item/tool/requestUserInput"
                assert ra.params == {
                    "threadId": thread_id,
                    "turnId": turn_id,
                    "itemId": ra.params["itemId"],
                    "isBlocking": True,
                    "autoResolutionMs": None,
                    "questions": [
                        {
                            "id": "q1",
                            "header": "Question",
                            "question": "Which colour?",
                            "isOther": False,
                            "isSecret": False,
                            "options": [
                                {"label": "red", "description": ""},
                                {"label": "blue", "description": ""},
                            ],
                        }
                    ],
                }
                thread = await read_thread(a.client, thread_id)
                assert thread["status"] == WAITING_ON_USER_INPUT
            # a left without answering; c never received the request: its answer is ignored.
            rb = await b.client.next_server_request()
            assert (rb.id, rb.params) == (ra.id, ra.params)
            await c.client.respond(ra.id, {"answers": {"q1": {"answers": ["blue"]}}})
            assert (await read_thread(c.client, thread_id))["status"] == WAITING_ON_USER_INPUT
            await b.client.respond(rb.id, {"answers": {"q1": {"answers": ["red", "and more"]}}})
            final = await turn_completed(b.client, thread_id, turn_id)
            assert final["status"] == "completed"
            await b.client.request("thread/loaded/list")  # barrier

    assert agent_texts(b, turn_id) == ["You answered: red, and more"]
    resolved_before(b, rb.id)
    statuses = [
        params_of(m)["status"]
        for m in b.log.notifications()
        if m["method"] == "thread/status/changed"
    ]
    assert WAITING_ON_USER_INPUT in statuses
    assert statuses[-1] == {"type": "idle"}
    assert unmatched_answers(b) == [] and unmatched_answers(c) == []


async def test_ask_is_replayed_with_its_original_id_on_rejoin(
    ws_url: str, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with peer(ws_url, schema_checker, "a") as a:
            thread_id = await new_thread(a.client, tmp_path)
            turn_id = await start_turn(a.client, thread_id, "/ask Name?")
            ra = await a.client.next_server_request()
            assert ra.params["questions"][0]["options"] is None
        async with peer(ws_url, schema_checker, "c") as c:
            resumed = await resume(c.client, thread_id)
            assert resumed["thread"]["status"] == WAITING_ON_USER_INPUT
            rc = await c.client.next_server_request()
            assert (rc.id, rc.method, rc.params) == (ra.id, ra.method, ra.params)
            assert c.log.index(lambda m: m.get("result") is resumed) < c.log.index(
                is_server_request(rc.id)
            )
            await c.client.respond(rc.id, {"answers": {"q1": {"answers": ["Ada"]}}})
            assert (await turn_completed(c.client, thread_id, turn_id))["status"] == "completed"
            await c.client.request("thread/loaded/list")  # barrier
    assert agent_texts(c, turn_id) == ["You answered: Ada"]
    resolved_before(c, rc.id)


async def test_ask_answered_with_an_error_says_no_answer(
    ws_url: str, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with peer(ws_url, schema_checker, "a") as a:
            thread_id = await new_thread(a.client, tmp_path)
            turn_id = await start_turn(a.client, thread_id, "/ask Name?")
            request = await a.client.next_server_request()
            await a.client.respond_error(request.id, -32000, "no user here")
            assert (await turn_completed(a.client, thread_id, turn_id))["status"] == "completed"
            await a.client.request("thread/loaded/list")  # barrier
    assert agent_texts(a, turn_id) == ["You answered: (no answer)"]


async def test_interrupt_settles_a_pending_question(
    ws_url: str, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with peer(ws_url, schema_checker, "a") as a, peer(ws_url, schema_checker, "b") as b:
            thread_id = await new_thread(a.client, tmp_path)
            await resume(b.client, thread_id)
            turn_id = await start_turn(a.client, thread_id, "/ask Name?\n/say after")
            request = await a.client.next_server_request()
            await b.client.next_server_request()
            await b.client.request("turn/interrupt", {"threadId": thread_id, "turnId": turn_id})
            for p in (a, b):
                assert (await turn_completed(p.client, thread_id, turn_id))["status"] == (
                    "interrupted"
                )
            await a.client.respond(request.id, {"answers": {"q1": {"answers": ["late"]}}})
            await a.client.request("thread/loaded/list")  # barrier: the late answer is ignored
            thread = await read_thread(a.client, thread_id)
    assert thread["status"] == {"type": "idle"}
    for p in (a, b):
        resolved_before(p, request.id)
        assert agent_texts(p, turn_id) == []
    assert unmatched_answers(a) == []


# --- /tool: dynamic tools and item/tool/call --------------------------------------------


async def test_tool_call_goes_to_the_subscribers_and_the_item_carries_the_answer(
    ws_url: str, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with peer(ws_url, schema_checker, "b") as b:
            async with peer(ws_url, schema_checker, "a") as a:
                thread_id = await new_thread(a.client, tmp_path, dynamicTools=[LOOKUP, SPACE])
                await resume(b.client, thread_id)
                turn_id = await start_turn(a.client, thread_id, '/tool lookup {"word": "trio"}')
                ra = await a.client.next_server_request()
            rb = await b.client.next_server_request()
            assert rb.method == "item/tool/call" and (rb.id, rb.params) == (ra.id, ra.params)
            item_id = rb.params["callId"]
            assert rb.params == {
                "threadId": thread_id,
                "turnId": turn_id,
                "callId": item_id,
                "namespace": None,
                "tool": "lookup",
                "arguments": {"word": "trio"},
            }
            started = b.log.index(
                lambda m: (
                    m.get("method") == "item/started" and params_of(m)["item"]["id"] == item_id
                )
            )
            assert started < b.log.index(is_server_request(rb.id))
            content = [
                {"type": "inputText", "text": "a library"},
                {"type": "inputImage", "imageUrl": "data:image/png;base64,AA=="},
                {"type": "inputText", "text": "for async"},
            ]
            await b.client.respond(rb.id, {"contentItems": content, "success": True})
            assert (await turn_completed(b.client, thread_id, turn_id))["status"] == "completed"
            await b.client.request("thread/loaded/list")  # barrier
            stored = (await read_thread(b.client, thread_id))["turns"][-1]["items"]

    resolved_before(b, rb.id, item_id)
    (item,) = [i for i in completed_items(b, turn_id) if i["type"] == "dynamicToolCall"]
    assert item["id"] == item_id and item["status"] == "completed"
    assert (item["tool"], item["namespace"], item["arguments"]) == (
        "lookup",
        None,
        {"word": "trio"},
    )
    assert (item["contentItems"], item["success"]) == (content, True)
    assert isinstance(item["durationMs"], int)
    assert agent_texts(b, turn_id) == ["tool lookup returned: a library\nfor async"]
    assert [i for i in stored if i["type"] == "dynamicToolCall"] == [item]


async def test_a_namespaced_tool_that_fails_ends_its_item_failed(
    ws_url: str, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with peer(ws_url, schema_checker, "a") as a:
            thread_id = await new_thread(a.client, tmp_path, dynamicTools=[SPACE])
            turn_id = await start_turn(a.client, thread_id, "/tool space.find [1, 2]")
            request = await a.client.next_server_request()
            assert (request.params["namespace"], request.params["tool"]) == ("space", "find")
            assert request.params["arguments"] == [1, 2]
            failed = [{"type": "inputText", "text": "not found"}]
            await a.client.respond(request.id, {"contentItems": failed, "success": False})
            assert (await turn_completed(a.client, thread_id, turn_id))["status"] == "completed"
            await a.client.request("thread/loaded/list")  # barrier
    (item,) = [i for i in completed_items(a, turn_id) if i["type"] == "dynamicToolCall"]
    assert (item["status"], item["success"], item["contentItems"]) == ("failed", False, failed)
    assert agent_texts(a, turn_id) == ["tool space.find returned: not found"]


async def test_interrupt_settles_a_tool_call_and_its_item_ends_failed(
    ws_url: str, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with peer(ws_url, schema_checker, "a") as a, peer(ws_url, schema_checker, "b") as b:
            thread_id = await new_thread(a.client, tmp_path, dynamicTools=[LOOKUP])
            await resume(b.client, thread_id)
            turn_id = await start_turn(a.client, thread_id, "/tool lookup {}")
            request = await a.client.next_server_request()
            await b.client.next_server_request()
            # A tool call sets no status flag: the thread is only active.
            assert (await read_thread(b.client, thread_id))["status"] == {
                "type": "active",
                "activeFlags": [],
            }
            await a.client.request("turn/interrupt", {"threadId": thread_id, "turnId": turn_id})
            for p in (a, b):
                assert (await turn_completed(p.client, thread_id, turn_id))["status"] == (
                    "interrupted"
                )
            await b.client.respond(request.id, {"contentItems": [], "success": True})  # late
            await b.client.request("thread/loaded/list")  # barrier
    item_id = request.params["callId"]
    for p in (a, b):
        resolved_before(p, request.id, item_id)
        (item,) = [i for i in completed_items(p, turn_id) if i["type"] == "dynamicToolCall"]
        assert item["status"] == "failed"
    assert unmatched_answers(b) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/tool nosuch {}", "/tool: no dynamic tool 'nosuch' was declared in thread/start"),
        ("/tool lookup {bad", "/tool lookup: the arguments are not valid JSON"),
        ("/tool lookup", "/tool lookup: JSON arguments expected"),
    ],
)
async def test_tool_directive_errors_fail_the_turn(
    ws_url: str, schema_checker: SchemaChecker, tmp_path: Path, text: str, message: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with peer(ws_url, schema_checker, "a") as a:
            thread_id = await new_thread(a.client, tmp_path, dynamicTools=[LOOKUP])
            turn_id = await start_turn(a.client, thread_id, text)
            final = await turn_completed(a.client, thread_id, turn_id)
    assert final["status"] == "failed"
    assert final["error"]["message"].startswith(message)
    assert a.log.server_requests() == []


async def test_dynamic_tools_need_the_experimental_capability(
    ws_url: str, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect_websocket(ws_url) as client:
            client.observer = schema_checker.check
            await client.initialize("plain")
            with pytest.raises(RpcError) as caught:
                await client.request("thread/start", {"dynamicTools": [LOOKUP]})
            bad = {"dynamicTools": [{"type": "function", "name": "x"}]}
            with pytest.raises(RpcError) as shape:
                await client.request("thread/start", bad)
    assert caught.value.code == -32600
    assert caught.value.message == "thread/start.dynamicTools requires experimentalApi capability"
    assert shape.value.code == -32602
    assert "dynamicTools[0].description" in str(shape.value.data)


async def test_dynamic_tools_survive_a_restart_and_a_fork_copies_them(tmp_path: Path) -> None:
    args = ["--data-dir", str(tmp_path / "data"), "--log-level", "warning"]
    with trio.fail_after(TIMEOUT):
        async with spawn_stdio(args) as client:
            await initialize(client, "first")
            thread_id = await new_thread(client, tmp_path, dynamicTools=[LOOKUP])
        async with spawn_stdio(args) as client:
            await initialize(client, "second")
            await resume(client, thread_id)
            fork = await client.request("thread/fork", {"threadId": thread_id})
            for tid in (thread_id, fork["thread"]["id"]):
                turn_id = await start_turn(client, tid, "/tool lookup {}")
                request = await client.next_server_request()
                assert (request.method, request.params["tool"]) == ("item/tool/call", "lookup")
                await client.respond(request.id, {"contentItems": [], "success": True})
                assert (await turn_completed(client, tid, turn_id))["status"] == "completed"


# --- item/permissions/requestApproval ---------------------------------------------------


async def test_permissions_request_is_routed_and_answered(
    ws_url: str, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with peer(ws_url, schema_checker, "b") as b:
            async with peer(ws_url, schema_checker, "a") as a:
                thread_id = await new_thread(a.client, tmp_path, modelProvider="permission-test")
                await resume(b.client, thread_id)
                turn_id = await start_turn(a.client, thread_id, "go")
                ra = await a.client.next_server_request()
                assert ra.method == "item/permissions/requestApproval"
                assert (await read_thread(a.client, thread_id))["status"] == {
                    "type": "active",
                    "activeFlags": ["waitingOnApproval"],
                }
            rb = await b.client.next_server_request()
            assert (rb.id, rb.params) == (ra.id, ra.params)
            assert rb.params["permissions"] == {"network": {"enabled": True}}
            assert (rb.params["cwd"], rb.params["reason"]) == (str(tmp_path), "to fetch")
            granted = {"permissions": {"network": {"enabled": True}}, "scope": "session"}
            await b.client.respond(rb.id, granted)
            assert (await turn_completed(b.client, thread_id, turn_id))["status"] == "completed"
            await b.client.request("thread/loaded/list")  # barrier
    assert agent_texts(b, turn_id) == ["granted for the session"]
    resolved_before(b, rb.id)


async def test_both_flags_show_in_order_while_both_requests_are_pending(
    ws_url: str, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with peer(ws_url, schema_checker, "a") as a:
            thread_id = await new_thread(a.client, tmp_path, modelProvider="both-test")
            turn_id = await start_turn(a.client, thread_id, "go")
            first = await a.client.next_server_request()
            second = await a.client.next_server_request()
            both = {"type": "active", "activeFlags": ["waitingOnApproval", "waitingOnUserInput"]}
            assert (await read_thread(a.client, thread_id))["status"] == both
            by_method = {r.method: r for r in (first, second)}
            await a.client.respond(
                by_method["item/permissions/requestApproval"].id, {"permissions": {}}
            )
            await a.client.next_notification(
                "thread/status/changed", where=lambda p: p["status"] == WAITING_ON_USER_INPUT
            )
            await a.client.respond(by_method["item/tool/requestUserInput"].id, {"answers": {}})
            assert (await turn_completed(a.client, thread_id, turn_id))["status"] == "completed"
    statuses = [
        params_of(m)["status"].get("activeFlags")
        for m in a.log.notifications(thread_id)
        if m["method"] == "thread/status/changed"
    ]
    assert statuses[statuses.index(both["activeFlags"]) + 1] == ["waitingOnUserInput"]


# --- /plan, /write's turn diff, token usage: in order -----------------------------------


async def test_plan_diff_and_usage_notifications_in_order(
    ws_url: str, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    (tmp_path / "old.txt").write_text("one\n")
    text = "hi\n/plan read | write\n/write old.txt two\n/write new.txt fresh\n/write old.txt three"
    with trio.fail_after(TIMEOUT):
        async with peer(ws_url, schema_checker, "a") as a:
            thread_id = await new_thread(a.client, tmp_path, approvalPolicy="never")
            turn_id = await start_turn(a.client, thread_id, text)
            await turn_completed(a.client, thread_id, turn_id)
            second = await start_turn(a.client, thread_id, "/say again")
            await turn_completed(a.client, thread_id, second)

    turn_events = [
        m for m in a.log.notifications(thread_id) if params_of(m).get("turnId") == turn_id
    ]
    wanted = {"turn/plan/updated", "turn/diff/updated", "thread/tokenUsage/updated"}
    kinds = [
        m["method"] if m["method"] in wanted else params_of(m)["item"]["type"]
        for m in turn_events
        if m["method"] in wanted or m["method"] == "item/completed"
    ]
    assert kinds == [
        "userMessage",
        "agentMessage",
        *["turn/plan/updated"] * 3,
        "fileChange",
        "turn/diff/updated",
        "fileChange",
        "turn/diff/updated",
        "fileChange",
        "turn/diff/updated",
        "thread/tokenUsage/updated",
    ]
    plans = [params_of(m) for m in turn_events if m["method"] == "turn/plan/updated"]
    assert [[(s["step"], s["status"]) for s in p["plan"]] for p in plans] == [
        [("read", "inProgress"), ("write", "pending")],
        [("read", "completed"), ("write", "inProgress")],
        [("read", "completed"), ("write", "completed")],
    ]
    diffs = [params_of(m)["diff"] for m in turn_events if m["method"] == "turn/diff/updated"]
    old, new = str(tmp_path / "old.txt"), str(tmp_path / "new.txt")

    def unified(before: str | None, after: str, path: str) -> str:
        lines = difflib.unified_diff(
            (before or "").splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile="/dev/null" if before is None else path,
            tofile=path,
        )
        return "".join(lines)

    assert diffs == [
        unified("one\n", "two\n", old),
        unified("one\n", "two\n", old) + unified(None, "fresh\n", new),
        unified("one\n", "three\n", old) + unified(None, "fresh\n", new),
    ]
    # One token per 4 characters (rounded up) of the text input and of the output.
    output = len("You said: hi")
    usage = [
        params_of(m)["tokenUsage"]
        for m in a.log.notifications(thread_id)
        if (m["method"] == "thread/tokenUsage/updated")
    ]
    first = {
        "inputTokens": -(-len(text) // 4),
        "cachedInputTokens": 0,
        "cacheWriteInputTokens": 0,
        "outputTokens": -(-output // 4),
        "reasoningOutputTokens": 0,
    }
    first["totalTokens"] = first["inputTokens"] + first["outputTokens"]
    assert usage[0] == {"total": first, "last": first, "modelContextWindow": None}
    last = usage[1]["last"]
    assert (last["inputTokens"], last["outputTokens"]) == (3, 2)  # "/say again", "again"
    assert usage[1]["total"]["totalTokens"] == first["totalTokens"] + last["totalTokens"]
    completed = a.log.index(is_notification("turn/completed", threadId=thread_id))
    assert a.log.index(is_notification("thread/tokenUsage/updated", turnId=turn_id)) < completed


async def test_plan_without_steps_fails_the_turn(
    ws_url: str, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with peer(ws_url, schema_checker, "a") as a:
            thread_id = await new_thread(a.client, tmp_path)
            turn_id = await start_turn(a.client, thread_id, "/plan  | ")
            final = await turn_completed(a.client, thread_id, turn_id)
    assert final["status"] == "failed"
    assert final["error"]["message"].startswith("/plan expects at least one step")
