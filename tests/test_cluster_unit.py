"""Cluster pieces (appserver/cluster/) with two or three nodes in one trio process on one
real PostgreSQL (pg_support): leases and fencing, following from the event log,
forwarded calls, answers from another node, broadcasts, failover. The process-level
scenarios (real node processes, SIGKILL) are tests/test_cluster_scenarios.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import psycopg
import trio
from pg_support import PgCluster
from threads_support import collect_turn, deltas, new_thread, of_thread, start_turn

from appserver.client import Client
from appserver.cluster.routing import ROUTED
from appserver.handlers import AREAS
from appserver.server import Server, ServerConfig, open_server

TIMEOUT = 30
SEQ = {"appserverEventSeq": True}


def config(url: str, node: str, **extra: Any) -> ServerConfig:
    return ServerConfig(store_url=url, node_id=node, lease_seconds=1.0, **extra)


@asynccontextmanager
async def nodes(url: str, *names: str) -> AsyncIterator[list[Server]]:
    async with AsyncExitStack() as stack:
        servers = [await stack.enter_async_context(open_server(config(url, n))) for n in names]
        yield servers


@asynccontextmanager
async def client(server: Server, caps: dict[str, Any] | None = None) -> AsyncIterator[Client]:
    async with server.connect() as c:
        await c.initialize("cluster-unit", capabilities=caps)
        yield c


def lease_rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT thread_id, node_id, epoch FROM thread_leases ORDER BY thread_id"
        ).fetchall()


async def test_config_cluster_mode() -> None:
    assert not ServerConfig().cluster
    assert not ServerConfig(store_url="postgresql://x/y").cluster
    assert not ServerConfig(node_id="a").cluster
    assert ServerConfig(store_url="postgresql://x/y", node_id="a").cluster


def test_no_routed_method_is_answered_in_the_inbound_task() -> None:
    """An immediate handler (handlers/common.py) never waits, so it cannot be one that a
    cluster node forwards to the thread's owner."""
    immediate = {m for area in AREAS for m in getattr(area, "IMMEDIATE", {})}
    assert "thread/loaded/list" in immediate
    assert not immediate & ROUTED


async def test_thread_start_takes_a_lease_and_close_releases_it(pg_url: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with nodes(pg_url, "a") as (a,), client(a) as ca:
            thread_id = await new_thread(ca)
            assert lease_rows(pg_url) == [(thread_id, "a", 1)]
            assert a.statistics()["cluster_threads_owned"] == 1
            await ca.request("thread/unsubscribe", {"threadId": thread_id})
            await ca.next_notification("thread/closed", where=of_thread(thread_id))
            assert lease_rows(pg_url) == []


async def test_follower_gets_the_owners_stream_and_forwards_turns(pg_url: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            nodes(pg_url, "a", "b") as (a, b),
            client(a, SEQ) as ca,
            client(b, SEQ) as cb,
            client(b) as cb_plain,
        ):
            thread_id = await new_thread(ca)
            resumed = await cb.request("thread/resume", {"threadId": thread_id})
            assert resumed["thread"]["id"] == thread_id
            await cb_plain.request("thread/resume", {"threadId": thread_id})
            assert b.statistics()["cluster_threads_followed"] == 1
            turn_id = await start_turn(cb, thread_id, "/stream 50 4")
            on_a = await collect_turn(ca, thread_id, turn_id)
            on_b = await collect_turn(cb, thread_id, turn_id)
            plain = await collect_turn(cb_plain, thread_id, turn_id)
            numbered = [(e["method"], e.get("seq")) for e in on_a if "seq" in e]
            assert numbered and numbered == [
                (e["method"], e.get("seq")) for e in on_b if "seq" in e
            ]
            assert all("seq" not in e for e in plain)
            item = next(
                e["params"]["item"]["id"]
                for e in on_a
                if e["method"] == "item/started" and e["params"]["item"]["type"] == "agentMessage"
            )
            assert deltas(on_a, item) == deltas(on_b, item) == deltas(plain, item)
            assert len(deltas(on_b, item)) == 200
            assert b.statistics()["cluster_calls_forwarded"] >= 2
            assert a.statistics()["cluster_calls_served"] >= 2


async def test_after_seq_resume_on_another_node(pg_url: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with nodes(pg_url, "a", "b") as (a, b), client(a, SEQ) as ca:
            thread_id = await new_thread(ca)
            turn_id = await start_turn(ca, thread_id, "/stream 20 3")
            events = await collect_turn(ca, thread_id, turn_id)
            seqs = [e["seq"] for e in events if "seq" in e]
            middle = seqs[len(seqs) // 2]
            async with client(b, SEQ) as cb:
                result = await cb.request(
                    "thread/resume", {"threadId": thread_id, "afterSeq": middle}
                )
                assert result["replay"] == {"fromSeq": middle + 1, "toSeq": seqs[-1]}
                got: list[int] = []
                while len(got) < len([s for s in seqs if s > middle]):
                    message = await cb.next_notification(where=of_thread(thread_id))
                    if "seq" in message:  # not a broadcast
                        got.append(message["seq"])
                assert got == [s for s in seqs if s > middle]


async def test_approval_asked_on_owner_answered_on_follower(pg_url: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            nodes(pg_url, "a", "b") as (a, b),
            client(a) as ca,
            client(b) as cb,
        ):
            thread_id = await new_thread(ca, approvalPolicy="untrusted")
            await cb.request("thread/resume", {"threadId": thread_id})
            turn_id = await start_turn(ca, thread_id, "/run echo hi")
            asked_b = await cb.next_server_request()
            asked_a = await ca.next_server_request()
            assert asked_a.id == asked_b.id
            await cb.respond(asked_b.id, {"decision": "decline"})
            on_a = await collect_turn(ca, thread_id, turn_id)
            resolved = [e for e in on_a if e["method"] == "serverRequest/resolved"]
            assert [r["params"]["requestId"] for r in resolved] == [asked_a.id]
            await ca.respond(asked_a.id, {"decision": "accept"})  # too late: ignored
            on_b = await collect_turn(cb, thread_id, turn_id)
            assert [e["method"] for e in on_b].count("serverRequest/resolved") == 1


async def test_broadcasts_reach_every_node(pg_url: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with nodes(pg_url, "a", "b") as (a, b), client(a) as ca, client(b) as cb:
            thread_id = await new_thread(ca)
            started = await cb.next_notification("thread/started")
            assert started["params"]["thread"]["id"] == thread_id
            await cb.request("thread/name/set", {"threadId": thread_id, "name": "n" * 200})
            named = await ca.next_notification("thread/name/updated")
            assert named["params"] == {"threadId": thread_id, "threadName": "n" * 200}
            assert a.registry.get(thread_id).record.name == "n" * 200  # type: ignore[union-attr]
            await cb.next_notification("thread/name/updated")
            # Over NOTIFY's payload limit: through a row.
            a.broadcast("thread/name/updated", {"threadId": thread_id, "threadName": "y" * 9000})
            big = await cb.next_notification("thread/name/updated")
            assert big["params"]["threadName"] == "y" * 9000
            # Archived from the follower's node: closed on the owner, followed no more.
            await cb.request("thread/resume", {"threadId": thread_id})
            assert b.statistics()["cluster_threads_followed"] == 1
            await cb.request("thread/archive", {"threadId": thread_id})
            await cb.next_notification("thread/archived", where=of_thread(thread_id))
            assert b.statistics()["cluster_threads_followed"] == 0
            await ca.next_notification("thread/archived", where=of_thread(thread_id))
            assert a.registry.get(thread_id) is None and lease_rows(pg_url) == []


async def test_cut_owner_fences_itself_and_the_follower_takes_over(
    pg_url: str, pg_cluster: PgCluster
) -> None:
    with trio.fail_after(TIMEOUT):
        async with nodes(pg_url, "a", "b") as (a, b), client(a) as ca, client(b) as cb:
            thread_id = await new_thread(ca)
            await cb.request("thread/resume", {"threadId": thread_id})
            first = await start_turn(ca, thread_id, "hello")
            await collect_turn(ca, thread_id, first)
            await collect_turn(cb, thread_id, first)
            await start_turn(ca, thread_id, "/sleep 30")
            await cb.next_notification("turn/started", where=of_thread(thread_id))
            # Every connection of the owner cut: its session is gone, it fences itself.
            assert pg_cluster.terminate("appserver:a") >= 2
            for c in (ca, cb):
                await c.next_notification(
                    "thread/status/changed",
                    where=lambda p: (
                        p.get("threadId") == thread_id and p["status"]["type"] == "idle"
                    ),
                )
            assert a.statistics()["cluster_self_fenced"] == 1
            assert b.statistics()["cluster_lease_takeovers"] == 1
            assert a.registry.get(thread_id) is None and b.registry.get(thread_id) is not None
            assert [n for n in ca.notifications if n["method"] == "turn/completed"] == []
            turn_id = await start_turn(ca, thread_id, "again")  # from the fenced node: forwarded
            for c in (ca, cb):
                events = await collect_turn(c, thread_id, turn_id)
                assert events[-2]["params"]["turn"]["status"] == "completed"
            read = await ca.request("thread/read", {"threadId": thread_id, "includeTurns": True})
            statuses = [t["status"] for t in read["thread"]["turns"]]
            assert statuses == ["completed", "interrupted", "completed"]
            assert [r[1:] for r in lease_rows(pg_url)] == [("b", 2)]
