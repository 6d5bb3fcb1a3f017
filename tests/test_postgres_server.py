"""Real `appserver --store postgresql://...` processes on a real PostgreSQL (pg_support):
persistence across restarts, a node's connections cut with pg_terminate_backend, and a
database lost mid-turn never reported as completed (PROTOCOL.md §8.6)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio
from pg_support import PgCluster
from threads_support import (
    Message,
    collect_turn,
    completed_turn,
    new_thread,
    run_turn,
    start_turn,
    stored_thread,
)

from appserver.client import Client, connect_websocket
from appserver.store.postgres import default_node_id  # cluster

from support import SchemaChecker, ServerProcess, run_ws_server

TIMEOUT = 40


# One server, not a cluster: a --node-id with a postgresql:// store makes a cluster node
# (appserver/cluster/), so these step-2 tests leave it out and find the server's
# connections under the default name (the host name). `node` is kept for the call sites.
PG_APP = "appserver:" + default_node_id()


def node_args(url: str, data: Path, node: str = "pgtest", *extra: str) -> list[str]:
    return ["--store", url, "--data-dir", str(data), *extra]


@asynccontextmanager
async def client_of(server: ServerProcess, checker: SchemaChecker) -> AsyncIterator[Client]:
    async with connect_websocket(server.url) as client:
        client.observer = checker.check
        await client.initialize("postgres")
        yield client


async def test_threads_and_turns_persist_across_a_restart(
    pg_url: str, tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    data = tmp_path / "data"
    with trio.fail_after(TIMEOUT):
        async with (
            run_ws_server(*node_args(pg_url, data), "--shutdown-timeout", "0.2") as first,
            client_of(first, schema_checker) as client,
        ):
            alpha = await new_thread(client)
            turn_id, events = await run_turn(client, alpha, "/say hello from postgres")
            assert completed_turn(events)["status"] == "completed"
            await client.request("thread/name/set", {"threadId": alpha, "name": "Alpha"})
            running = await new_thread(client)
            await start_turn(client, running, "/sleep 30")
            await client.next_notification("turn/started")
            before = await stored_thread(client, alpha)
        assert not (data / "appserver.sqlite3").exists()  # the data dir holds no database

        async with (
            run_ws_server(*node_args(pg_url, data)) as second,
            client_of(second, schema_checker) as client,
        ):
            listed = (await client.request("thread/list"))["data"]
            assert {t["id"] for t in listed} == {alpha, running}
            after = await stored_thread(client, alpha)
            assert after["name"] == "Alpha"
            assert after["turns"] == before["turns"]
            assert [t["id"] for t in after["turns"]] == [turn_id]
            cut = await stored_thread(client, running)
            assert [t["status"] for t in cut["turns"]] == ["interrupted"]
            resumed = await client.request("thread/resume", {"threadId": alpha})
            assert resumed["thread"]["id"] == alpha
            _, events = await run_turn(client, alpha, "/say again")
            assert completed_turn(events)["status"] == "completed"


async def test_killed_connections_are_replaced(
    pg_url: str, pg_cluster: PgCluster, tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            run_ws_server(*node_args(pg_url, tmp_path / "d", "cut-me")) as server,
            client_of(server, schema_checker) as client,
        ):
            thread_id = await new_thread(client)
            assert await trio.to_thread.run_sync(pg_cluster.terminate, PG_APP) >= 1  # cluster
            listed = (await client.request("thread/list"))["data"]
            assert [t["id"] for t in listed] == [thread_id]
            _, events = await run_turn(client, thread_id, "/say still here")
            assert completed_turn(events)["status"] == "completed"
            stored = await stored_thread(client, thread_id)
            assert [t["status"] for t in stored["turns"]] == ["completed"]


async def test_database_lost_mid_turn_is_never_reported_completed(
    pg_url: str, pg_cluster: PgCluster, tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    database = pg_url.rsplit("/", 1)[1]
    args = node_args(pg_url, tmp_path / "d", "lose-me", "--store-retry-seconds", "1")
    with trio.fail_after(TIMEOUT):
        async with (
            run_ws_server(*args) as server,
            client_of(server, schema_checker) as client,
        ):
            thread_id = await new_thread(client)
            turn_id = await start_turn(client, thread_id, "/run echo lost\n/say after the outage")
            # The turn waits for its approval: the database goes away under it (no new
            # connection is allowed, and the node's open ones are killed), then it goes on.
            approval = await client.next_server_request("item/commandExecution/requestApproval")
            await trio.to_thread.run_sync(
                pg_cluster.psql, f"ALTER DATABASE {database} ALLOW_CONNECTIONS false"
            )
            await trio.to_thread.run_sync(pg_cluster.terminate, PG_APP)  # cluster
            await client.respond(approval.id, {"decision": "accept"})
            # The turn gives up after --store-retry-seconds (the server says so), and its
            # end cannot be stored while the database is away: nothing is announced.
            await server.wait_for_stderr(f"turn {turn_id}: the store failed for 1 s")
            assert not [n for n in client.notifications if n["method"] == "turn/completed"], (
                "a turn/completed was announced while nothing could be stored"
            )
            await trio.to_thread.run_sync(
                pg_cluster.psql, f"ALTER DATABASE {database} ALLOW_CONNECTIONS true"
            )
            # Once the database is back, the end of the turn is stored, then announced.
            events: list[Message] = await collect_turn(client, thread_id, turn_id)
            done = completed_turn(events)
            assert done["id"] == turn_id
            assert done["status"] == "failed"  # what was not stored is not announced
            stored = await stored_thread(client, thread_id)
            assert [t["status"] for t in stored["turns"]] == ["failed"]
