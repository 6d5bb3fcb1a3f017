"""thread/turns/list and thread/items/list against a real server."""

from __future__ import annotations

from typing import Any

import trio
from threads_support import TIMEOUT, new_thread, rpc_error, run_turn, start_turn, unload

from conftest import ConnectFactory


async def _walk(client: Any, method: str, **params: Any) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await client.request(method, {**params, "cursor": cursor})
        data += page["data"]
        cursor = page["nextCursor"]
        if cursor is None:
            return data


async def test_turns_and_items_pages_loaded_and_unloaded(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("pager")
            thread_id = await new_thread(client)
            turn_ids = [(await run_turn(client, thread_id, f"/say turn {n}"))[0] for n in range(3)]
            for loaded in (True, False):
                if not loaded:
                    await unload(client, thread_id)
                turns = await _walk(client, "thread/turns/list", threadId=thread_id, limit=1)
                assert [t["id"] for t in turns] == turn_ids[::-1]
                assert all(t["itemsView"] == "summary" for t in turns)
                assert [i["type"] for i in turns[0]["items"]] == ["userMessage", "agentMessage"]
                full = await client.request(
                    "thread/turns/list",
                    {"threadId": thread_id, "sortDirection": "asc", "itemsView": "notLoaded"},
                )
                assert [t["id"] for t in full["data"]] == turn_ids
                assert all(t["items"] == [] for t in full["data"])
                items = await _walk(client, "thread/items/list", threadId=thread_id, limit=2)
                assert [e["turnId"] for e in items] == [t for t in turn_ids for _ in range(2)]
                assert items[1]["item"]["text"] == "turn 0"
                assert items[1]["completedAtMs"] == items[1]["item"]["completedAtMs"]
                anchored = await client.request(
                    "thread/items/list",
                    {
                        "threadId": thread_id,
                        "turnId": turn_ids[1],
                        "cursor": {"type": "item", "itemId": items[2]["item"]["id"]},
                    },
                )
                assert [e["item"]["id"] for e in anchored["data"]] == [items[3]["item"]["id"]]


async def test_running_turn_shows_as_in_a_snapshot(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("pager")
            thread_id = await new_thread(client)
            turn_id = await start_turn(client, thread_id, "/stream 3 2\n/sleep 30")
            await client.next_notification("item/agentMessage/delta")
            page = await client.request(
                "thread/turns/list", {"threadId": thread_id, "limit": 1, "itemsView": "full"}
            )
            (turn,) = page["data"]
            assert turn["id"] == turn_id and turn["status"] == "inProgress"
            assert [i["type"] for i in turn["items"]][:2] == ["userMessage", "agentMessage"]
            await client.request("turn/interrupt", {"threadId": thread_id, "turnId": turn_id})


async def test_paging_errors(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("pager")
            thread_id = await new_thread(client)
            await run_turn(client, thread_id, "/say hi")
            turns = await client.request("thread/turns/list", {"threadId": thread_id})
            for method, cursor in [
                ("thread/turns/list", "garbage"),
                ("thread/items/list", "garbage"),
                ("thread/items/list", turns["backwardsCursor"]),  # a turns cursor
            ]:
                error = await rpc_error(client, method, {"threadId": thread_id, "cursor": cursor})
                assert error.code == -32600 and error.data["kind"] == "invalidCursor"
            missing = "019a0000-0000-7000-8000-000000000000"
            for method in ("thread/turns/list", "thread/items/list"):
                error = await rpc_error(client, method, {"threadId": missing})
                assert error.data["kind"] == "threadNotFound"
            anchor = {"type": "item", "itemId": "x"}
            error = await rpc_error(
                client, "thread/items/list", {"threadId": thread_id, "cursor": anchor}
            )
            assert error.code == -32602
            error = await rpc_error(
                client,
                "thread/items/list",
                {"threadId": thread_id, "cursor": anchor, "turnId": turns["data"][0]["id"]},
            )
            assert error.code == -32602


async def test_summary_view_shows_the_user_messages_and_the_final_answer(
    connect: ConnectFactory,
) -> None:
    """The summary page reads only those items from the store (issue 14), loaded or not."""
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("pager")
            thread_id = await new_thread(client)
            await run_turn(client, thread_id, "/say first\n/say second\n/say last")
            for loaded in (True, False):
                if not loaded:
                    await unload(client, thread_id)
                views = {}
                for view in ("summary", "full"):
                    params = {"threadId": thread_id, "itemsView": view}
                    (views[view],) = (await client.request("thread/turns/list", params))["data"]
                full = views["full"]["items"]
                assert [i["type"] for i in full] == ["userMessage"] + ["agentMessage"] * 3
                assert views["summary"]["items"] == [full[0], full[-1]]
                assert views["summary"]["items"][-1]["text"] == "last"
                assert {k: v for k, v in views["summary"].items() if k != "items"} == {
                    **{k: v for k, v in views["full"].items() if k != "items"},
                    "itemsView": "summary",
                }
