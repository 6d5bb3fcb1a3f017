"""Starting a cluster node and wiring it into the server (server.py calls these)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from appserver import jsonrpc
from appserver.cluster.calls import Calls
from appserver.cluster.db import ControlDb
from appserver.cluster.listen import BROADCAST, EVENTS, Listener, node_channel
from appserver.cluster.node import Node
from appserver.requests import RequestContext
from appserver.threads.loaded import Broadcast
from appserver.threads.registry import Registry

REQUEST_ID_BLOCK = 1 << 24  # server request ids per node incarnation


@asynccontextmanager
async def open_node(pg: Any, node_id: str, lease_seconds: float) -> AsyncIterator[Node]:
    """Run the node's tasks for the duration of the block, on the PostgresStore `pg`
    (its connections' conninfo and application_name). `join_cluster` next, before
    any client comes."""
    application_name, conninfo = pg.application_name, pg.conninfo
    db = ControlDb(conninfo, application_name)
    bus_db = ControlDb(conninfo, application_name)
    try:
        async with trio.open_nursery() as nursery:
            calls = Calls(bus_db, node_id)
            node = Node(node_id, lease_seconds, pg, db, bus_db, nursery, calls)
            node._last_renewal = trio.current_time()
            incarnation = await db.run(
                lambda c, s: c.execute(
                    "SELECT nextval(pg_get_serial_sequence('cluster_calls', 'id'))"
                ).fetchone()
            )
            assert incarnation is not None
            jsonrpc.pending.seed_server_request_ids(int(incarnation[0]) * REQUEST_ID_BLOCK)
            await node.calls.start_after_existing()
            listener = Listener(
                conninfo,
                application_name,
                [EVENTS, BROADCAST, node_channel(node_id)],
                node.dispatch,
                node.on_connected,
            )
            nursery.start_soon(listener.run)
            with trio.fail_after(10):
                await listener.connected.wait()
            for task in (
                node._heartbeat,
                node._watchdog,
                node._watch,
                node._send_event_notifies,
                node._send_broadcasts,
                node._serve_calls,
            ):
                nursery.start_soon(task)
            try:
                yield node
            finally:
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await db.aclose()
            await bus_db.aclose()


def join_cluster(
    node: Node,
    registry: Registry,
    run_request: Callable[[RequestContext, str, Any], Awaitable[Any]],
    local_broadcast: Broadcast,
) -> None:
    """Wire the node in before any client comes: ownership and event NOTIFYs for the
    registry, forwarded requests run by `run_request` (Handlers.handle_here), other
    nodes' broadcasts delivered by `local_broadcast`."""
    node.registry = registry
    node.run_request = run_request
    node.local_broadcast = local_broadcast
    registry.ownership = node
    registry.events_flushed = node.events_flushed
