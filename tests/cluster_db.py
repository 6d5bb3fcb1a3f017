"""The database side of the cluster tests: which connections each node holds (told
apart by the socket's owner process, not by what the node says), and cutting one node's
connections by its application_name, with psycopg on the node's own database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psutil  # type: ignore[import-untyped]  # (in the test extra; no stubs)
import psycopg
import trio
from cluster_support import Node, application_name

# Our own connections are named, so they never count as a node's.
TEST_APPLICATION = "cluster-tests"


def _connect(pg_url: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(pg_url, autocommit=True, application_name=TEST_APPLICATION)


def database_connections(pg_url: str) -> list[tuple[str, int | None]]:
    """(application_name, client port) of every backend connected to `pg_url`'s database,
    ours excluded."""
    with _connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT application_name, client_port FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'"
        ).fetchall()
    return [(str(name), port) for name, port in rows]


def application_names(pg_url: str) -> dict[str, int]:
    """How many connections each application_name has on the database."""
    counts: dict[str, int] = {}
    for name, _ in database_connections(pg_url):
        counts[name] = counts.get(name, 0) + 1
    return counts


def terminate_node(pg_url: str, node: str) -> int:
    """pg_terminate_backend of every connection named `appserver:<node>`; how many."""
    with _connect(pg_url) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s",
            (application_name(node),),
        ).fetchone()
    return int(row[0]) if row else 0


def local_ports_of(pid: int) -> set[int]:
    """The local TCP ports of every socket of process `pid` (to tell which process a
    backend's client_port belongs to)."""
    return {c.laddr.port for c in psutil.Process(pid).net_connections(kind="tcp") if c.laddr}


def connections_by_node(pg_url: str, nodes: Sequence[Node]) -> dict[str, list[str]]:
    """For each node, the application_name of every database connection its process
    holds, told apart by the connection's client port (the process owns that socket);
    `"?"` collects connections no node's process holds."""
    ports = {node.name: local_ports_of(node.pid) for node in nodes if node.alive}
    found: dict[str, list[str]] = {name: [] for name in ports}
    for app_name, port in database_connections(pg_url):
        owner = next((n for n, p in ports.items() if port in p), "?")
        found.setdefault(owner, []).append(app_name)
    return found


async def cut_node(pg_url: str, node: str) -> int:
    return await trio.to_thread.run_sync(terminate_node, pg_url, node)
