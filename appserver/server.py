"""Composition root: open_server(), serving websocket and stdio, shutdown (ServerConfig
is in server_config.py).

This is the only module where every layer meets.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

import attrs
import trio

from appserver import jsonrpc, logs
from appserver.client_errors import single_errors  # H4
from appserver.connection import CLOSE_GOING_AWAY, Connection
from appserver.datadir import (
    DataDirLock,
    default_data_dir,
)
from appserver.handlers import Handlers, Services
from appserver.metrics import CONTENT_TYPE_LATEST, Metrics, TimedStore  # H2
from appserver.server_config import DEFAULT_MAX_MESSAGE_BYTES, ServerConfig
from appserver.server_store import STORE_FILE, open_store
from appserver.store.base import ThreadStore
from appserver.threads.event_log import EventLogLimits
from appserver.threads.registry import Registry, open_registry
from appserver.transports import unix, websocket
from appserver.transports.base import Transport
from appserver.transports.lines import LineTransport
from appserver.transports.memory import memory_transport_pair
from appserver.transports.ws_auth import WsAuthPolicy
from appserver.web import load_assets  # web (D)

if TYPE_CHECKING:
    from appserver.client import Client
    from appserver.cluster.node import Node

log = logging.getLogger("appserver.server")

CONNECTION_FLUSH_SECONDS = 2.0
T = TypeVar("T")

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "STORE_FILE",
    "Server",
    "ServerConfig",
    "default_data_dir",
    "open_server",
]


@attrs.define(eq=False)
class Server:
    config: ServerConfig
    store: ThreadStore
    _conn_nursery: trio.Nursery
    _ws_auth: WsAuthPolicy | None
    registry: Registry = attrs.field(init=False)
    handlers: Handlers = attrs.field(init=False)
    _connections: set[Connection] = attrs.Factory(set)
    _listener_scopes: set[trio.CancelScope] = attrs.Factory(set)
    _shutting_down: bool = False
    _shutdown_started: bool = False
    _shutdown_done: trio.Event = attrs.Factory(trio.Event)
    _fast: trio.Event = attrs.Factory(trio.Event)
    # The data dir's lock (None in memory); listeners record their URLs in it (datadir.py).
    data_dir_lock: DataDirLock | None = None
    # The cluster node this server is (appserver/cluster/), None for a single server.
    cluster: Node | None = None
    # H2: Prometheus metrics (metrics.py), served at /metrics on the websocket listener.
    metrics: Metrics = attrs.field(
        init=False, default=attrs.Factory(lambda self: Metrics(self.statistics), takes_self=True)
    )

    # --- connections --------------------------------------------------------------------

    async def run_connection(self, transport: Transport) -> None:
        """Serve one connection to its end (any transport)."""
        conn = Connection(
            transport,
            self.handlers,
            max_inflight=self.config.max_inflight,
            outbound_limit=self.config.outbound_queue,
            metrics=self.metrics,
        )
        if self._shutting_down:
            conn.close(CLOSE_GOING_AWAY, "server shutting down")
        self._connections.add(conn)
        peer = logs.connection_opened(conn.id, transport)
        try:
            await conn.run()
        finally:
            self._connections.discard(conn)
            logs.connection_closed(conn, transport.kind, peer)

    def broadcast(self, method: str, params: Any) -> None:
        """Send a notification to every initialized connection that has not opted out,
        encoding it once (in a cluster: on every node)."""
        if self.cluster is not None:
            self.cluster.broadcast_remote(method, params)
        self.broadcast_local(method, params)

    def broadcast_local(self, method: str, params: Any) -> None:
        """`broadcast`, to this server's connections only."""
        message: jsonrpc.Outbound | None = None
        for conn in list(self._connections):
            if conn.wants(method):
                if message is None:
                    message = jsonrpc.Outbound(jsonrpc.encode_notification(method, params))
                conn.send_nowait(message)

    # --- listeners ----------------------------------------------------------------------

    async def serve_websocket(
        self,
        host: str,
        port: int,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve websocket clients on host:port until cancelled or shut down; for
        `nursery.start`, which returns the bound port."""
        websocket.validate_listen_host(host)
        if not websocket.is_loopback_host(host) and self._ws_auth is None:
            raise ValueError(
                f"refusing to listen on non-loopback host {host} "
                "without --ws-token-file or --ws-auth"
            )
        url_host = f"[{host}]" if ":" in host else host
        recorder = _RecordUrl(self.data_dir_lock, task_status, lambda p: f"ws://{url_host}:{p}")
        # the browser client's files, served at GET / (appserver/web/)
        assets = await trio.to_thread.run_sync(load_assets)
        with trio.CancelScope() as scope:
            self._listener_scopes.add(scope)
            try:
                await websocket.serve(
                    host,
                    port,
                    self.run_connection,
                    handler_nursery=self._conn_nursery,
                    allowed_origins=self.config.allow_origins,
                    auth=self._ws_auth,
                    max_message_bytes=self.config.max_message_bytes,
                    ping_interval=self.config.ws_ping_interval,
                    ping_timeout=self.config.ws_ping_timeout,
                    http=websocket.HttpRoutes(  # H2: /healthz, /readyz, /metrics
                        ready=lambda: not self._shutting_down,
                        metrics=lambda: (CONTENT_TYPE_LATEST, self.metrics.render()),
                        allowed_origins=frozenset(self.config.allow_origins),
                        auth=self._ws_auth,
                        assets=assets,  # web (D)
                    ),
                    task_status=recorder,
                )
            finally:
                self._listener_scopes.discard(scope)
                recorder.forget()

    async def serve_unix(
        self,
        path: Path,
        *,
        task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve websocket clients on the Unix socket `path` (mode 0600, removed when
        serving ends) until cancelled or shut down; for `nursery.start`, which returns
        the socket's absolute path. No bearer check: the file mode is the guard, as in
        the reference."""
        recorder = _RecordUrl(self.data_dir_lock, task_status, lambda p: f"unix://{p}")
        with trio.CancelScope() as scope:
            self._listener_scopes.add(scope)
            try:
                await unix.serve(
                    path,
                    self.run_connection,
                    handler_nursery=self._conn_nursery,
                    allowed_origins=self.config.allow_origins,
                    max_message_bytes=self.config.max_message_bytes,
                    ping_interval=self.config.ws_ping_interval,
                    ping_timeout=self.config.ws_ping_timeout,
                    task_status=recorder,
                )
            finally:
                self._listener_scopes.discard(scope)
                recorder.forget()

    async def serve_stdio(
        self,
        receive_stream: trio.abc.ReceiveStream | None = None,
        send_stream: trio.abc.SendStream | None = None,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve the one stdio client (or the given streams) until end of input."""
        if receive_stream is None or send_stream is None:
            receive_stream = trio.lowlevel.FdStream(os.dup(0))
            send_stream = trio.lowlevel.FdStream(os.dup(1))
        transport = LineTransport(receive_stream, send_stream, self.config.max_message_bytes)
        task_status.started()
        await self.run_connection(transport)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[Client]:
        """An in-process client wired to this server by memory channels (no sockets)."""
        from appserver.client import Client

        server_side, client_side = memory_transport_pair(self.config.max_message_bytes)
        self._conn_nursery.start_soon(self.run_connection, server_side)
        async with Client.open(client_side) as client:  # H4: one error, not a group
            yield client

    # --- shutdown -----------------------------------------------------------------------

    async def shutdown(self, *, graceful: bool = True) -> None:
        """PROTOCOL.md §8.8: stop accepting connections, let running turns finish for up
        to shutdown_timeout (graceful) or interrupt them at once, store them interrupted,
        close every connection (websocket 1001). A later call with graceful=False cuts a
        graceful shutdown short; every call returns when shutdown is complete."""
        if not graceful:
            self._fast.set()
        if self._shutdown_started:
            await self._shutdown_done.wait()
            return
        self._shutdown_started = True
        self._shutting_down = True
        for scope in list(self._listener_scopes):
            scope.cancel()
        timeout = 0.0 if self._fast.is_set() else self.config.shutdown_timeout
        async with trio.open_nursery() as nursery:

            async def cut_short() -> None:
                await self._fast.wait()
                registry_scope.cancel()

            nursery.start_soon(cut_short)
            with trio.CancelScope() as registry_scope:
                await self.registry.shutdown(grace=timeout)
            if registry_scope.cancelled_caught:
                await self.registry.shutdown(grace=0)
            nursery.cancel_scope.cancel()
        connections = list(self._connections)
        async with trio.open_nursery() as nursery:
            for conn in connections:
                nursery.start_soon(
                    conn.aclose, CLOSE_GOING_AWAY, "server shutting down", CONNECTION_FLUSH_SECONDS
                )
        # Let each finish its close handshake while its websocket reader still runs.
        with trio.move_on_after(CONNECTION_FLUSH_SECONDS + 2):
            for conn in connections:
                await conn.finished.wait()
        self._shutdown_done.set()

    def statistics(self) -> dict[str, Any]:
        return {
            "connections": len(self._connections),
            "listeners": len(self._listener_scopes),
            "inflight": sum(c.inflight for c in self._connections),
            "queued": sum(c.queued for c in self._connections),  # H2
            **self.registry.statistics(),
            **(self.cluster.statistics() if self.cluster is not None else {}),
        }


class _RecordUrl(trio.TaskStatus[T]):
    """A listener's task_status: once it reports what it is bound to, its URL is
    recorded in the data dir's lock file (for `appserver-client`), and forgotten when
    the listener stops."""

    def __init__(
        self, lock: DataDirLock | None, inner: trio.TaskStatus[T], url: Callable[[T], str]
    ) -> None:
        self._lock, self._inner, self._url = lock, inner, url
        self._recorded: str | None = None

    @overload
    def started(self: _RecordUrl[None]) -> None: ...

    @overload
    def started(self, value: T) -> None: ...

    def started(self, value: T | None = None) -> None:
        bound = cast(T, value)
        if self._lock is not None:
            self._recorded = self._url(bound)
            self._lock.add_url(self._recorded)
        self._inner.started(bound)

    def forget(self) -> None:
        if self._lock is not None and self._recorded is not None:
            self._lock.remove_url(self._recorded)
            self._recorded = None


@asynccontextmanager
async def open_server(config: ServerConfig | None = None) -> AsyncIterator[Server]:
    """Run a server for the duration of the block; leaving it shuts down (§8.8).

    With a data dir, the server holds its lock (datadir.py) from before the store opens
    until after it closes; a data dir in use by another process raises
    `appserver.datadir.DataDirInUse` ("data dir DIR is in use by pid N")."""
    config = config or ServerConfig()
    with single_errors():  # H4: errors leave as themselves, not in ExceptionGroups
        async with _open_server(config) as server:
            yield server


@asynccontextmanager
async def _open_server(config: ServerConfig) -> AsyncIterator[Server]:
    ws_auth = config.load_ws_auth()
    backends = config.backends()
    async with (
        open_store(config) as (store, lock),
        _open_cluster(config, store) as node,
        trio.open_nursery() as conn_nursery,
    ):
        server = Server(config, store, conn_nursery, ws_auth, data_dir_lock=lock, cluster=node)
        store = cast(ThreadStore, TimedStore(store, server.metrics))  # H2: store latency
        async with open_registry(
            store,
            server.broadcast,
            idle_unload_seconds=config.idle_unload_seconds,
            store_retry_seconds=config.store_retry_seconds,
            backends=backends,
            event_limits=EventLogLimits(
                max_events=config.event_log_events, max_bytes=config.event_log_bytes
            ),
        ) as registry:
            server.registry = registry
            codex_home = ":memory:" if config.data_dir is None else str(config.data_dir.resolve())
            server.handlers = Handlers(
                Services(
                    codex_home=codex_home,
                    store=store,
                    registry=registry,
                    broadcast=server.broadcast,
                    backends=backends,
                )
            )
            if node is not None:
                from appserver.cluster import join_cluster
                from appserver.cluster.routing import Routing

                join_cluster(node, registry, server.handlers.handle_here, server.broadcast_local)
                server.handlers.cluster = Routing(node)
            try:
                yield server
            finally:
                with trio.CancelScope(shield=True):
                    await server.shutdown()
                conn_nursery.cancel_scope.cancel()


@asynccontextmanager
async def _open_cluster(config: ServerConfig, store: ThreadStore) -> AsyncIterator[Node | None]:
    """The cluster node (appserver/cluster/) when configured, else None (nothing runs)."""
    if not config.cluster:
        yield None
        return
    from appserver.cluster import open_node

    assert config.node_id is not None
    async with open_node(store, config.node_id, config.lease_seconds) as node:
        yield node
