"""Issue 16 step 3, failover and fencing, from the outside: real node processes on a real
PostgreSQL with a 1 s lease (cluster_support.TEST_LEASE_SECONDS).

- The owner SIGKILLed mid-turn: after the lease timeout another node takes the thread
  over; the cut-off turn is stored `interrupted`, clients on other nodes see the status
  change and start a new turn that completes; nothing reported completed is lost.
- The owner's database connections cut (pg_terminate_backend): it stops running the
  thread (what it could not store is never reported completed, its later writes never
  land), another node takes over after the lease timeout, new turns work there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import trio
from cluster_db import cut_node
from cluster_support import (
    Message,
    NodeClient,
    completed_agent_messages,
    open_client,
    open_cluster,
    read_thread,
    start_turn,
    step,
    thread_stream,
)

from support import SchemaChecker

TIMEOUT = 60


def agent_message_done(thread_id: str, text: str) -> Callable[[Message], bool]:
    return lambda m: (
        m.get("method") == "item/completed"
        and m["params"]["threadId"] == thread_id
        and m["params"]["item"]["type"] == "agentMessage"
        and m["params"]["item"]["text"] == text
    )


def not_active(status: Message) -> bool:
    return bool(status["type"] != "active")


def turn_reports(peer: NodeClient, thread_id: str, turn_id: str) -> list[str]:
    """Every status a `turn/completed` of this turn reported to the peer."""
    return [
        m["params"]["turn"]["status"]
        for m in thread_stream(peer.log.messages, thread_id)
        if m["method"] == "turn/completed" and m["params"]["turn"]["id"] == turn_id
    ]


def agent_texts_of(turn: Message) -> list[str]:
    return [i["text"] for i in turn["items"] if i["type"] == "agentMessage"]


async def test_owner_sigkill_mid_turn_another_node_takes_over(
    pg_url: str, tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            open_cluster(pg_url, tmp_path) as nodes,
            open_client(nodes["b"], schema_checker, "on-b") as b,
            open_client(nodes["c"], schema_checker, "on-c") as c,
        ):
            async with open_client(nodes["a"], schema_checker, "on-a") as a:
                started = await a.request("thread/start", {"approvalPolicy": "never"})
                thread_id = started["thread"]["id"]
                for peer in (b, c):
                    await peer.request("thread/resume", {"threadId": thread_id})
                done = await start_turn(a, thread_id, "/say before the kill")
                for peer in (a, b, c):
                    assert (await peer.turn_completed(thread_id, done))["status"] == "completed"
                cut = await start_turn(b, thread_id, "/say early words\n/sleep 30")
                for peer in (b, c):  # reported completed before the kill
                    await peer.wait_for(agent_message_done(thread_id, "early words"))
                mark_b, mark_c = len(b.log.messages), len(c.log.messages)
                killed_at = time.monotonic()
                step("SIGKILL a")
                await nodes["a"].kill()
            # Clients on the surviving nodes see the thread leave `active`.
            for peer, mark in ((c, mark_c), (b, mark_b)):
                status = await peer.status_change(thread_id, not_active, mark)
                assert status["type"] in ("idle", "systemError"), status
                step(f"{peer.name} saw the status change")
            took_over = time.monotonic() - killed_at
            stored = await read_thread(c, thread_id)
            assert [t["id"] for t in stored["turns"]] == [done, cut]
            first, second = stored["turns"]
            assert (first["status"], agent_texts_of(first)) == ("completed", ["before the kill"])
            assert second["status"] == "interrupted"
            assert agent_texts_of(second) == ["early words"]  # nothing reported is lost
            for peer in (b, c):  # if the cut-off turn was announced, as stored
                assert set(turn_reports(peer, thread_id, cut)) <= {"interrupted"}
            # A new turn from either survivor completes, and both see it.
            after = await start_turn(c, thread_id, "/say after the failover")
            step("new turn started")
            for peer in (b, c):
                assert (await peer.turn_completed(thread_id, after))["status"] == "completed"
            again = await read_thread(b, thread_id)
            assert [t["status"] for t in again["turns"]] == [
                "completed",
                "interrupted",
                "completed",
            ]
    print(f"failover: SIGKILL to the status change on the survivors in {took_over:.2f}s")


async def test_owner_cut_from_the_database_is_fenced_and_another_node_takes_over(
    pg_url: str, tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    sleep = 4.0
    with trio.fail_after(TIMEOUT):
        async with (
            open_cluster(pg_url, tmp_path) as nodes,
            open_client(nodes["a"], schema_checker, "on-a") as a,
            open_client(nodes["b"], schema_checker, "on-b") as b,
        ):
            started = await a.request("thread/start", {"approvalPolicy": "never"})
            thread_id = started["thread"]["id"]
            await b.request("thread/resume", {"threadId": thread_id})
            cut = await start_turn(a, thread_id, f"/say early\n/sleep {sleep}\n/say late")
            for peer in (a, b):
                await peer.wait_for(agent_message_done(thread_id, "early"))
            script_ends = time.monotonic() + sleep
            mark_b = len(b.log.messages)
            assert await cut_node(pg_url, "a") >= 1
            step("cut a's connections")
            # Another node takes over after the lease timeout: B sees the status change.
            await b.status_change(thread_id, not_active, mark_b)
            step("b saw the status change")
            stored = await read_thread(b, thread_id)
            [turn] = stored["turns"]
            assert turn["id"] == cut and turn["status"] == "interrupted"
            assert agent_texts_of(turn) == ["early"]
            # New turns work, from B and from A (A no longer runs the thread: its
            # client's turn runs on the new owner and A's client still sees it all).
            from_b = await start_turn(b, thread_id, "/say on the new owner")
            step("turn from b started")
            for peer in (a, b):
                assert (await peer.turn_completed(thread_id, from_b))["status"] == "completed"
            from_a = await start_turn(a, thread_id, "/say from the fenced node")
            step("turn from a started")
            for peer in (a, b):
                assert (await peer.turn_completed(thread_id, from_a))["status"] == "completed"
            # Past the moment the cut-off script would have said "late" on A: a fenced
            # owner's late writes never land (a window in which nothing may happen, not
            # a synchronisation).
            await trio.sleep(max(0.0, script_ends + 1.0 - time.monotonic()))
            final = await read_thread(b, thread_id)
            await a.request("thread/loaded/list")  # barrier: A's stream is delivered
    assert [t["id"] for t in final["turns"]] == [cut, from_b, from_a]
    assert [t["status"] for t in final["turns"]] == ["interrupted", "completed", "completed"]
    assert agent_texts_of(final["turns"][0]) == ["early"], "a fenced write landed"
    for peer in (a, b):
        # No client was ever told the cut-off turn completed: if announced, as stored.
        assert set(turn_reports(peer, thread_id, cut)) <= {"interrupted"}, peer.name
        texts = [
            m["text"] for m in completed_agent_messages(thread_stream(peer.log.messages, thread_id))
        ]
        assert "late" not in texts, f"{peer.name} was told about a write that was refused"
