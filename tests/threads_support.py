"""Helpers for the thread, turn and persistence tests (PROTOCOL.md §4-§10)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from appserver.client import Client, RpcError, ServerRequest

TIMEOUT = 15

Message = dict[str, Any]


class Recorder:
    """Records every message a client receives, in arrival order, as `(message, method)`
    where `method` names the request an answer belongs to. Chains the client's existing
    observer (the schema check), so nothing is validated less."""

    def __init__(self, client: Client) -> None:
        self.messages: list[tuple[Message, str | None]] = []
        inner = client.observer

        def observe(message: Message, method: str | None) -> None:
            if inner is not None:
                inner(message, method)
            self.messages.append((message, method))

        client.observer = observe

    def index(self, predicate: Callable[[Message, str | None], bool]) -> int:
        """Position of the first recorded message matching `predicate`."""
        for i, (message, method) in enumerate(self.messages):
            if predicate(message, method):
                return i
        raise AssertionError("no recorded message matches")

    def answer_index(self, request_method: str) -> int:
        """Position of the (last) answer to a request of `request_method`."""
        found = [
            i
            for i, (message, method) in enumerate(self.messages)
            if method == request_method and "method" not in message
        ]
        assert found, f"no answer to {request_method} recorded"
        return found[-1]

    def notification_index(self, name: str, **params: Any) -> int:
        return self.index(
            lambda m, _: (
                m.get("method") == name
                and "id" not in m
                and all((m.get("params") or {}).get(k) == v for k, v in params.items())
            )
        )

    def thread_events(self, thread_id: str) -> list[Message]:
        """Every notification of a thread recorded so far, in order."""
        return [
            m
            for m, _ in self.messages
            if "method" in m
            and "id" not in m
            and (m.get("params") or {}).get("threadId") == thread_id
        ]

    def server_requests(self) -> list[Message]:
        return [m for m, _ in self.messages if "method" in m and "id" in m]


def new_uuid() -> str:
    return str(uuid.uuid4())


def text_input(*texts: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": t, "text_elements": []} for t in texts]


async def rpc_error(client: Client, method: str, params: Any = None) -> RpcError:
    """The error a request is answered with (fails if it succeeds)."""
    with pytest.raises(RpcError) as info:
        await client.request(method, params)
    return info.value


def error_paths(error: RpcError) -> set[str]:
    assert error.code == -32602, error
    assert isinstance(error.data, dict) and error.data["kind"] == "invalidParams", error.data
    return {e["path"] for e in error.data["errors"]}


async def start_thread(client: Client, **params: Any) -> Message:
    """thread/start; returns the whole result."""
    result: Message = await client.request("thread/start", params)
    return result


async def new_thread(client: Client, **params: Any) -> str:
    """thread/start; returns the thread id."""
    return str((await start_thread(client, **params))["thread"]["id"])


async def start_turn(
    client: Client, thread_id: str, text: str | list[dict[str, Any]], **params: Any
) -> str:
    """turn/start; returns the turn id."""
    user_input = text_input(text) if isinstance(text, str) else text
    result = await client.request(
        "turn/start", {"threadId": thread_id, "input": user_input, **params}
    )
    assert result["turn"]["status"] == "inProgress" and result["turn"]["items"] == []
    return str(result["turn"]["id"])


def of_thread(thread_id: str) -> Callable[[Message], bool]:
    return lambda params: params.get("threadId") == thread_id


async def collect_turn(client: Client, thread_id: str, turn_id: str) -> list[Message]:
    """Every buffered or arriving notification of the thread, in order, up to the
    `turn/completed` of `turn_id` and the `thread/status/changed` right after it."""
    events: list[Message] = []
    while True:
        msg = await client.next_notification(where=of_thread(thread_id))
        events.append(msg)
        params = msg["params"]
        if msg["method"] == "turn/completed" and params["turn"]["id"] == turn_id:
            break
    events.append(
        await client.next_notification("thread/status/changed", where=of_thread(thread_id))
    )
    return events


async def run_turn(
    client: Client, thread_id: str, text: str | list[dict[str, Any]], **params: Any
) -> tuple[str, list[Message]]:
    """Start a turn that needs no approval and collect its notifications."""
    turn_id = await start_turn(client, thread_id, text, **params)
    return turn_id, await collect_turn(client, thread_id, turn_id)


def methods(events: list[Message]) -> list[str]:
    return [e["method"] for e in events]


def completed_items(events: list[Message]) -> list[Message]:
    return [e["params"]["item"] for e in events if e["method"] == "item/completed"]


def completed_turn(events: list[Message]) -> Message:
    done = [e["params"]["turn"] for e in events if e["method"] == "turn/completed"]
    assert len(done) == 1, events
    turn: Message = done[0]
    return turn


def deltas(events: list[Message], item_id: str, method: str = "item/agentMessage/delta") -> str:
    return "".join(
        e["params"]["delta"]
        for e in events
        if e["method"] == method and e["params"]["itemId"] == item_id
    )


async def next_approval(client: Client, method: str | None = None) -> ServerRequest:
    return await client.next_server_request(method)


async def wait_closed(client: Client, thread_id: str) -> None:
    """Wait for the `thread/closed` broadcast of a thread."""
    await client.next_notification("thread/closed", where=of_thread(thread_id))


async def unload(client: Client, thread_id: str) -> None:
    """Unsubscribe the (only) subscriber and wait until the thread is closed."""
    assert await client.request("thread/unsubscribe", {"threadId": thread_id}) == {
        "status": "unsubscribed"
    }
    await wait_closed(client, thread_id)


async def next_second(after: int) -> None:
    """Wait until the wall clock's Unix second is past `after` (timestamps are in whole
    seconds, so a change can only be seen across a second boundary). Not a
    synchronisation: nothing else is waited for."""
    remaining = after + 1 - time.time()
    if remaining > 0:
        await trio.sleep(remaining)
    assert int(time.time()) > after


async def stored_thread(client: Client, thread_id: str, *, turns: bool = True) -> Message:
    result = await client.request("thread/read", {"threadId": thread_id, "includeTurns": turns})
    thread: Message = result["thread"]
    return thread


DELTA_METHODS = frozenset(
    {
        "item/agentMessage/delta",
        "item/reasoning/summaryTextDelta",
        "item/commandExecution/outputDelta",
        "item/fileChange/outputDelta",
    }
)


def assert_well_ordered(events: list[Message]) -> None:
    """§6: each item starts once and completes once, in that order, with its deltas in
    between; every started item is completed; agent message deltas add up to its text;
    nothing of the turn comes after its turn/completed but the status change."""
    started: dict[str, int] = {}
    completed: dict[str, int] = {}
    for i, event in enumerate(events):
        method, params = event["method"], event["params"]
        if method == "item/started":
            assert params["item"]["id"] not in started, f"started twice: {event}"
            started[params["item"]["id"]] = i
        elif method == "item/completed":
            item = params["item"]
            assert item["id"] in started and item["id"] not in completed, event
            completed[item["id"]] = i
            if item["type"] == "agentMessage":
                assert deltas(events, item["id"]) == item["text"], item
        elif method in DELTA_METHODS:
            item_id = params["itemId"]
            assert item_id in started and item_id not in completed, f"stray delta: {event}"
    assert started.keys() == completed.keys(), "an item was started but never completed"
    ends = [i for i, e in enumerate(events) if e["method"] == "turn/completed"]
    assert ends and all(e["method"] == "thread/status/changed" for e in events[ends[-1] + 1 :]), (
        "events after turn/completed"
    )


# --- thread/list checks, run against the in-memory and the SQLite store -------------------


async def list_ids(client: Client, **params: Any) -> list[str]:
    result = await client.request("thread/list", params)
    assert result["nextCursor"] is None, "expected one page"
    return [t["id"] for t in result["data"]]


async def all_threads(client: Client) -> list[Message]:
    result = await client.request("thread/list", {"limit": 100})
    data: list[Message] = result["data"]
    return data


async def check_list_order_limits_and_pagination(client: Client) -> None:
    """§5.4: newest first (ties by id descending), default limit 25, clamp to 1..100, a
    walk covers every thread exactly once, a bad cursor is invalidCursor."""
    created = [await new_thread(client) for _ in range(105)]
    first = await client.request("thread/list")
    assert len(first["data"]) == 25 and first["nextCursor"] is not None
    assert all(t["turns"] == [] for t in first["data"])
    full = await client.request("thread/list", {"limit": 1000})
    assert len(full["data"]) == 100 and full["nextCursor"] is not None
    one = await client.request("thread/list", {"limit": 0})
    assert len(one["data"]) == 1
    keys = [(t["createdAt"], t["id"]) for t in full["data"]]
    assert keys == sorted(keys, reverse=True)  # newest first, ties by id descending
    assert first["data"] == full["data"][:25] and one["data"] == full["data"][:1]

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 7}
        if cursor is not None:
            params["cursor"] = cursor
        page = await client.request("thread/list", params)
        assert len(page["data"]) <= 7
        seen += [t["id"] for t in page["data"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(created) and len(seen) == len(set(seen)) == 105
    assert seen[:100] == [t["id"] for t in full["data"]]
    # The whole walk is newest first: the 5 oldest threads come last.
    by_id = {t["id"]: t for t in full["data"]}
    assert set(seen[100:]) == set(created) - set(by_id)
    oldest = [await stored_thread(client, i, turns=False) for i in seen[100:]]
    assert min(by_id[i]["createdAt"] for i in seen[:100]) >= max(t["createdAt"] for t in oldest)

    error = await rpc_error(client, "thread/list", {"cursor": "not-a-cursor"})
    assert (error.code, error.kind) == (-32600, "invalidCursor")
    assert "not-a-cursor" in error.message


async def check_list_cursor_stability(client: Client) -> None:
    """§5.4: threads created or updated after the first page never make a later page
    repeat or skip a thread that existed when paging began."""
    created = [await new_thread(client) for _ in range(6)]
    # created_at: threads created after the first page do not disturb the walk.
    page = await client.request("thread/list", {"limit": 2})
    seen = [t["id"] for t in page["data"]]
    newer = [await new_thread(client) for _ in range(2)]
    cursor = page["nextCursor"]
    while cursor is not None:
        page = await client.request("thread/list", {"limit": 2, "cursor": cursor})
        seen += [t["id"] for t in page["data"]]
        cursor = page["nextCursor"]
    assert sorted(seen) == sorted(created) and len(seen) == 6

    # updated_at: a thread not yet reached that moves to the front mid-walk is
    # neither skipped nor repeated.
    everything = created + newer
    await next_second(max(t["updatedAt"] for t in await all_threads(client)))
    page = await client.request("thread/list", {"limit": 3, "sortKey": "updated_at"})
    seen = [t["id"] for t in page["data"]]
    later = [i for i in everything if i not in seen]
    await client.request("thread/name/set", {"threadId": later[-1], "name": "bumped"})
    fresh = await client.request("thread/list", {"limit": 1, "sortKey": "updated_at"})
    assert fresh["data"][0]["id"] == later[-1]  # it really moved to the front
    cursor = page["nextCursor"]
    while cursor is not None:
        page = await client.request(
            "thread/list", {"limit": 3, "sortKey": "updated_at", "cursor": cursor}
        )
        seen += [t["id"] for t in page["data"]]
        cursor = page["nextCursor"]
    assert sorted(seen) == sorted(everything) and len(seen) == len(everything)


async def check_list_filters(client: Client, tmp_path: Path) -> None:
    """§5.4: archived, cwd (exact), searchTerm (preview or name, case-insensitive),
    modelProviders, sourceKinds (ignored)."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    hello = await new_thread(client, cwd=str(one))
    await run_turn(client, hello, "Hello World\nsecond line")
    named = await new_thread(client, cwd=str(two))
    await client.request("thread/name/set", {"threadId": named, "name": "Groceries LIST"})
    archived = await new_thread(client, cwd=str(one))
    await client.request("thread/archive", {"threadId": archived})
    plain = await new_thread(client, cwd=str(two))

    assert (await stored_thread(client, hello))["preview"] == "Hello World"
    unarchived = {hello, named, plain}
    assert set(await list_ids(client)) == unarchived
    assert set(await list_ids(client, archived=False)) == unarchived
    assert set(await list_ids(client, archived=None, cwd=None)) == unarchived
    assert await list_ids(client, archived=True) == [archived]
    assert await list_ids(client, cwd=str(one)) == [hello]
    assert await list_ids(client, cwd=str(one), archived=True) == [archived]
    assert await list_ids(client, cwd=str(one) + "/") == []  # exact match only
    assert await list_ids(client, searchTerm="hello world") == [hello]
    assert await list_ids(client, searchTerm="second") == []  # first line only
    assert await list_ids(client, searchTerm="list") == [named]
    assert set(await list_ids(client, searchTerm="O")) == {hello, named}
    assert await list_ids(client, searchTerm="nothing like it") == []
    assert set(await list_ids(client, modelProviders=[])) == unarchived
    assert set(await list_ids(client, modelProviders=["builtin"])) == unarchived
    assert await list_ids(client, modelProviders=["someone-else"]) == []
    assert set(await list_ids(client, sourceKinds=["vscode"])) == unarchived
