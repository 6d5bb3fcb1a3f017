"""Issue 16 step 3, lifecycle across nodes, from the outside (real node processes on a
real PostgreSQL): lifecycle broadcasts reach every node's clients, statuses follow a turn
that runs on another node, unsubscribe stops one client's stream only, and the thread
closes once its last subscriber anywhere has left."""

from __future__ import annotations

from pathlib import Path

import trio
from cluster_support import (
    STEADY_LEASE_SECONDS,
    NodeClient,
    is_notification,
    open_client,
    open_cluster,
    read_thread,
    start_turn,
    thread_stream,
)

from support import SchemaChecker

TIMEOUT = 60


async def loaded(peer: NodeClient) -> list[str]:
    result = await peer.request("thread/loaded/list")
    ids: list[str] = result["data"]
    return ids


async def test_lifecycle_broadcasts_and_statuses_reach_every_node(
    pg_url: str, tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    waiting = {"type": "active", "activeFlags": ["waitingOnApproval"]}
    with trio.fail_after(TIMEOUT):
        async with (
            open_cluster(pg_url, tmp_path, lease_seconds=STEADY_LEASE_SECONDS) as nodes,
            open_client(nodes["a"], schema_checker, "on-a") as a,
            open_client(nodes["b"], schema_checker, "on-b") as b,
            open_client(nodes["c"], schema_checker, "watcher-on-c") as c,
        ):
            started = await a.request(
                "thread/start", {"cwd": str(tmp_path), "approvalPolicy": "on-request"}
            )
            thread_id = started["thread"]["id"]
            for peer in (b, c):  # thread/started is broadcast: to every node
                got = await peer.wait_for(is_notification("thread/started"))
                assert got["params"]["thread"]["id"] == thread_id
            await b.request("thread/resume", {"threadId": thread_id})
            # thread/loaded/list is per node: the threads that node runs (owns); B
            # follows the thread for its client but does not run it.
            assert await loaded(a) == [thread_id]
            assert await loaded(b) == [] and await loaded(c) == []
            await b.request("thread/name/set", {"threadId": thread_id, "name": "Shared"})
            for peer in (a, b, c):
                await peer.wait_for(
                    is_notification("thread/name/updated", threadId=thread_id, threadName="Shared")
                )
            # A turn on A waits on an approval: the watcher on C, subscribed to nothing,
            # sees the status change, and reads the live status from C.
            turn_id = await start_turn(a, thread_id, "/run true")
            await c.status_change(thread_id, lambda s: s == waiting)
            assert (await read_thread(c, thread_id))["status"] == waiting
            request = await b.client.next_server_request()
            await b.client.respond(request.id, {"decision": "accept"})
            for peer in (a, b):
                assert (await peer.turn_completed(thread_id, turn_id))["status"] == "completed"
            await c.status_change(thread_id, lambda s: s["type"] == "idle")
            assert thread_stream(c.log.messages, thread_id) == []  # no turn traffic, no request
            stored = await read_thread(c, thread_id)
            assert stored["name"] == "Shared" and stored["status"] == {"type": "idle"}
            assert [t["status"] for t in stored["turns"]] == ["completed"]
            listed = await c.request("thread/list")
            assert [t["id"] for t in listed["data"]] == [thread_id]
            assert listed["data"][0]["name"] == "Shared"


async def test_unsubscribe_on_one_node_stops_that_client_only(
    pg_url: str, tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            open_cluster(pg_url, tmp_path, ("a", "b"), lease_seconds=STEADY_LEASE_SECONDS) as nodes,
            open_client(nodes["a"], schema_checker, "owner") as owner,
            open_client(nodes["b"], schema_checker, "leaver") as leaver,
            open_client(nodes["b"], schema_checker, "stayer") as stayer,
        ):
            started = await owner.request("thread/start", {"approvalPolicy": "never"})
            thread_id = started["thread"]["id"]
            for peer in (leaver, stayer):
                await peer.request("thread/resume", {"threadId": thread_id})
            first = await start_turn(owner, thread_id, "/say to everyone")
            for peer in (owner, leaver, stayer):
                await peer.turn_completed(thread_id, first)
            answer = await leaver.request("thread/unsubscribe", {"threadId": thread_id})
            assert answer == {"status": "unsubscribed"}
            mark = len(leaver.log.messages)
            second = await start_turn(owner, thread_id, "/say to those who stayed")
            for peer in (owner, stayer):
                assert (await peer.turn_completed(thread_id, second))["status"] == "completed"
            await leaver.request("thread/loaded/list")  # a round trip on B after it
            assert thread_stream(leaver.log.messages[mark:], thread_id) == []
            # The leaver still gets the broadcasts (status back to idle).
            await leaver.status_change(thread_id, lambda s: s["type"] == "idle", mark)


async def test_the_thread_closes_when_its_last_subscriber_anywhere_leaves(
    pg_url: str, tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            open_cluster(pg_url, tmp_path, lease_seconds=STEADY_LEASE_SECONDS) as nodes,
            open_client(nodes["a"], schema_checker, "on-a") as a,
            open_client(nodes["b"], schema_checker, "on-b") as b,
            open_client(nodes["c"], schema_checker, "watcher-on-c") as c,
        ):
            started = await a.request("thread/start", {"approvalPolicy": "never"})
            thread_id = started["thread"]["id"]
            await b.request("thread/resume", {"threadId": thread_id})
            # The owner's own subscriber leaves; B's client is still subscribed: the
            # thread stays open and keeps working for it.
            answer = await a.request("thread/unsubscribe", {"threadId": thread_id})
            assert answer == {"status": "unsubscribed"}
            turn_id = await start_turn(b, thread_id, "/say still open")
            assert (await b.turn_completed(thread_id, turn_id))["status"] == "completed"
            closed = is_notification("thread/closed", threadId=thread_id)
            assert not any(closed(m) for p in (a, b, c) for m in p.log.messages)
            # The last subscriber leaves: closed, announced on every node.
            answer = await b.request("thread/unsubscribe", {"threadId": thread_id})
            assert answer == {"status": "unsubscribed"}
            for peer in (a, b, c):
                await peer.status_change(thread_id, lambda s: s["type"] == "notLoaded")
                await peer.wait_for(closed)
            for peer in (a, b, c):
                assert thread_id not in await loaded(peer), peer.name
                assert (await read_thread(peer, thread_id))["status"] == {"type": "notLoaded"}
            # It can be resumed again anywhere (that node runs it now), and works.
            await c.request("thread/resume", {"threadId": thread_id})
            assert await loaded(c) == [thread_id] and await loaded(a) == []
            again = await start_turn(c, thread_id, "/say reopened")
            assert (await c.turn_completed(thread_id, again))["status"] == "completed"
