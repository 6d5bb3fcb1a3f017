"""The cluster harness itself (tests/cluster_support.py, tests/cluster_db.py) on real node
processes and a real PostgreSQL: every database connection of a node, one node alone or
three in a cluster, is named `appserver:<node>` (issue 16; told apart by the process that
holds the socket), cutting them by that name reaches exactly that node, SIGKILL leaves no
process behind."""

from __future__ import annotations

from pathlib import Path

import trio
from cluster_db import TEST_APPLICATION, application_names, connections_by_node, cut_node
from cluster_support import (
    open_client,
    open_cluster,
    open_node,
)
from threads_support import completed_turn, new_thread, run_turn

from support import SchemaChecker

TIMEOUT = 40


async def test_every_connection_of_a_node_carries_its_application_name(
    pg_url: str, tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            open_node(pg_url, tmp_path, "solo", lease_seconds=None) as node,
            open_client(node, schema_checker) as peer,
        ):
            thread_id = await new_thread(peer.client)
            _, events = await run_turn(peer.client, thread_id, "/say named")
            assert completed_turn(events)["status"] == "completed"
            held = await trio.to_thread.run_sync(connections_by_node, pg_url, [node])
            assert held["solo"], "the node holds no database connection"
            assert set(held["solo"]) == {"appserver:solo"}, held
            assert held.get("?", []) == [], f"connections nobody holds: {held}"
            names = await trio.to_thread.run_sync(application_names, pg_url)
            assert TEST_APPLICATION not in names  # our probe is not counted


async def test_cutting_a_node_by_name_reaches_its_connections_only(
    pg_url: str, tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            open_node(pg_url, tmp_path, "cut", lease_seconds=None) as node,
            open_client(node, schema_checker) as peer,
        ):
            thread_id = await new_thread(peer.client)
            assert await cut_node(pg_url, "someone-else") == 0
            assert await cut_node(pg_url, "cut") >= 1
            # The node replaces them (a plain node: no lease to lose).
            _, events = await run_turn(peer.client, thread_id, "/say after the cut")
            assert completed_turn(events)["status"] == "completed"


async def test_sigkill_ends_the_node_at_once(
    pg_url: str, tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_node(pg_url, tmp_path, "victim", lease_seconds=None) as node:
            async with open_client(node, schema_checker) as peer:
                await new_thread(peer.client)
                await node.kill()
                await peer.client.wait_closed()
            assert not node.alive
            names = await trio.to_thread.run_sync(application_names, pg_url)
            # PostgreSQL notices the dead peer's sockets closing.
            while names.get("appserver:victim"):
                await trio.sleep(0.05)  # polling the database: nothing to wait on
                names = await trio.to_thread.run_sync(application_names, pg_url)


async def test_every_connection_of_every_cluster_node_carries_its_name(
    pg_url: str, tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            open_cluster(pg_url, tmp_path) as nodes,
            open_client(nodes["a"], schema_checker) as a,
        ):
            thread_id = await new_thread(a.client)
            _, events = await run_turn(a.client, thread_id, "/say named")
            assert completed_turn(events)["status"] == "completed"
            held = await trio.to_thread.run_sync(connections_by_node, pg_url, list(nodes.values()))
    for name in nodes:
        assert held[name], f"node {name} holds no database connection"
        assert set(held[name]) == {f"appserver:{name}"}, held
    assert held.get("?", []) == [], f"connections no node holds: {held}"
