"""turn/steer (PROTOCOL.md §10, the reference's answers and errors) against a real server."""

from __future__ import annotations

from typing import Any

import trio
from threads_support import (
    TIMEOUT,
    Message,
    collect_turn,
    completed_items,
    completed_turn,
    deltas,
    new_thread,
    rpc_error,
    run_turn,
    start_turn,
    stored_thread,
    text_input,
    unload,
)

from appserver.client import Client

from conftest import ConnectFactory


def steer_params(thread_id: str, turn_id: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"threadId": thread_id, "expectedTurnId": turn_id, "input": text_input(text), **extra}


async def running(client: Client, thread_id: str, text: str) -> str:
    """Start a turn and wait until its input is announced."""
    turn_id = await start_turn(client, thread_id, text)
    await client.next_notification(
        "item/completed",
        where=lambda p: p.get("turnId") == turn_id and p["item"]["type"] == "userMessage",
    )
    return turn_id


def texts(items: list[Message]) -> list[tuple[str, str]]:
    return [
        (i["type"], i["text"] if i["type"] == "agentMessage" else i["content"][0]["text"])
        for i in items
    ]


async def test_steer_ends_the_sleep_and_is_answered_in_the_same_turn(
    connect: ConnectFactory,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("steer")
            thread_id = await new_thread(client)
            turn_id = await running(client, thread_id, "/sleep 30\n/say never")
            result = await client.request(
                "turn/steer",
                steer_params(thread_id, turn_id, "/say steered", clientUserMessageId="c1"),
            )
            assert result == {"turnId": turn_id}
            events = await collect_turn(client, thread_id, turn_id)
            turn = completed_turn(events)
            assert turn["status"] == "completed"
            steered = [
                e["params"]["item"]
                for e in events
                if e["method"] == "item/started" and e["params"]["item"]["type"] == "userMessage"
            ]
            assert [i["clientId"] for i in steered][-1:] == ["c1"]
            assert texts(completed_items(events))[-2:] == [
                ("userMessage", "/say steered"),
                ("agentMessage", "steered"),
            ]
            stored = await stored_thread(client, thread_id)
            assert texts(stored["turns"][0]["items"]) == [
                ("userMessage", "/sleep 30\n/say never"),
                ("userMessage", "/say steered"),
                ("agentMessage", "steered"),
            ]


async def test_steer_cuts_a_stream_which_completes_with_what_it_has(
    connect: ConnectFactory,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("steer")
            thread_id = await new_thread(client)
            turn_id = await start_turn(client, thread_id, "/stream 100000 1\n/sleep 30\n/say no")
            first = await client.next_notification("item/agentMessage/delta")
            await client.request("turn/steer", steer_params(thread_id, turn_id, "hello"))
            events = await collect_turn(client, thread_id, turn_id)
            stream_id = first["params"]["itemId"]
            items = completed_items(events)
            cut = next(i for i in items if i["id"] == stream_id)
            assert cut["text"] == first["params"]["delta"] + deltas(events, stream_id)
            assert ("abcdefghijklmnopqrstuvwxyz" * 4000).startswith(cut["text"])
            assert texts(items)[-2:] == [
                ("userMessage", "hello"),
                ("agentMessage", "You said: hello"),
            ]
            # The cut item completes before the steered input is announced.
            order = [(e["method"], e["params"].get("item", {}).get("type")) for e in events]
            steered_at = len(order) - 1 - order[::-1].index(("item/started", "userMessage"))
            assert order.index(("item/completed", "agentMessage")) < steered_at
            assert completed_turn(events)["status"] == "completed"


async def test_steer_errors_are_the_references(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("steer")
            thread_id = await new_thread(client)
            turn_id = await running(client, thread_id, "/sleep 30")
            other = "019e0000-0000-7000-8000-000000000000"
            wrong = await rpc_error(client, "turn/steer", steer_params(thread_id, other, "x"))
            assert (wrong.code, wrong.message) == (
                -32600,
                f"expected active turn id `{other}` but found `{turn_id}`",
            )
            assert wrong.data == {"kind": "turnNotActive"}
            empty = await rpc_error(
                client,
                "turn/steer",
                {"threadId": thread_id, "expectedTurnId": turn_id, "input": []},
            )
            assert (empty.code, empty.message) == (-32600, "input must not be empty")
            unknown = await rpc_error(client, "turn/steer", steer_params(other, turn_id, "x"))
            assert unknown.data == {"kind": "threadNotFound"}
            await client.request("turn/interrupt", {"threadId": thread_id, "turnId": turn_id})
            late = await rpc_error(client, "turn/steer", steer_params(thread_id, turn_id, "x"))
            assert (late.code, late.message) == (-32600, "no active turn to steer")
            assert late.data == {"kind": "turnNotActive"}
            await unload(client, thread_id)
            unloaded = await rpc_error(client, "turn/steer", steer_params(thread_id, turn_id, "x"))
            assert unloaded.message == "no active turn to steer"
            # Nothing was stored for the refused steers.
            stored = await stored_thread(client, thread_id)
            assert texts(stored["turns"][0]["items"]) == [("userMessage", "/sleep 30")]


async def test_every_steer_is_its_own_item_in_order(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("steer")
            thread_id = await new_thread(client)
            turn_id = await running(client, thread_id, "/sleep 30")
            for text in ("one\n/sleep 30", "two"):
                await client.request("turn/steer", steer_params(thread_id, turn_id, text))
            events = await collect_turn(client, thread_id, turn_id)
            items = texts(completed_items(events))
            assert [t for kind, t in items if kind == "userMessage"] == ["one\n/sleep 30", "two"]
            assert items[-1][0] == "agentMessage" and items[-1][1].endswith("two")
            # The next turn runs as usual.
            _, after = await run_turn(client, thread_id, "/say again")
            assert texts(completed_items(after))[-1] == ("agentMessage", "again")


async def test_both_subscribers_see_the_steer_in_the_same_order(
    connect_shared: ConnectFactory,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect_shared() as owner, connect_shared() as other:
            await owner.initialize("owner")
            await other.initialize("other")
            thread_id = await new_thread(owner)
            await other.request("thread/resume", {"threadId": thread_id})
            turn_id = await running(owner, thread_id, "/sleep 30")
            await other.next_notification(
                "item/completed", where=lambda p: p.get("turnId") == turn_id
            )
            await other.request("turn/steer", steer_params(thread_id, turn_id, "/say both"))
            seen = [await collect_turn(c, thread_id, turn_id) for c in (owner, other)]

            def shape(events: list[Message]) -> list[tuple[str, str | None]]:
                return [(e["method"], e["params"].get("item", {}).get("id")) for e in events]

            assert shape(seen[0]) == shape(seen[1])
            assert texts(completed_items(seen[1])) == [
                ("userMessage", "/say both"),
                ("agentMessage", "both"),
            ]
