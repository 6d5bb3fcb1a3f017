"""Composition root: ServerConfig, open_server(), serving websocket and stdio, shutdown.

This is the only module where every layer meets.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from appserver import jsonrpc
from appserver.connection import CLOSE_GOING_AWAY, Connection
from appserver.handlers import Handlers
from appserver.transports import websocket
from appserver.transports.base import Transport
from appserver.transports.lines import LineTransport
from appserver.transports.memory import memory_transport_pair

if TYPE_CHECKING:
    from appserver.client import Client

log = logging.getLogger("appserver.server")

DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024


def default_data_dir() -> Path:
    if home := os.environ.get("APPSERVER_HOME"):
        return Path(home)
    if xdg := os.environ.get("XDG_DATA_HOME"):
        return Path(xdg) / "appserver"
    return Path.home() / ".local" / "share" / "appserver"


@attrs.define(kw_only=True)
class ServerConfig:
    """Every CLI option as a field (PROTOCOL.md §2.1, §11). data_dir=None: in memory."""

    listen: str = "stdio://"
    data_dir: Path | None = None
    ws_token_file: Path | None = None
    allow_origins: Sequence[str] = ()
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    outbound_queue: int = 1024
    max_inflight: int = 128
    idle_unload_seconds: float = 1800.0
    shutdown_timeout: float = 30.0
    log_level: str = "info"
    log_json: bool = False

    def read_token(self) -> str | None:
        if self.ws_token_file is None:
            return None
        token = self.ws_token_file.read_text(encoding="utf-8").strip()
        if not token:
            raise ValueError(f"token file is empty: {self.ws_token_file}")
        return token


@attrs.define(eq=False)
class Server:
    config: ServerConfig
    handlers: Handlers
    _conn_nursery: trio.Nursery
    _token: str | None
    _connections: set[Connection] = attrs.Factory(set)
    _listener_scopes: set[trio.CancelScope] = attrs.Factory(set)
    _shutting_down: bool = False
    _shutdown_done: trio.Event = attrs.Factory(trio.Event)

    # --- connections --------------------------------------------------------------------

    async def run_connection(self, transport: Transport) -> None:
        """Serve one connection to its end (any transport)."""
        conn = Connection(
            transport,
            self.handlers,
            max_inflight=self.config.max_inflight,
            outbound_limit=self.config.outbound_queue,
        )
        if self._shutting_down:
            conn.close(CLOSE_GOING_AWAY, "server shutting down")
        self._connections.add(conn)
        log.debug("connection %d opened (%s)", conn.id, transport.kind)
        try:
            await conn.run()
        finally:
            self._connections.discard(conn)
            log.debug("connection %d closed (%s)", conn.id, conn.close_reason)

    def broadcast(self, method: str, params: Any) -> None:
        """Send a notification to every initialized connection that has not opted out,
        encoding it once."""
        text: str | None = None
        for conn in list(self._connections):
            if conn.wants(method):
                if text is None:
                    text = jsonrpc.encode_notification(method, params)
                conn.send_nowait(text)

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
        if not websocket.is_loopback_host(host) and self._token is None:
            raise ValueError(
                f"refusing to listen on non-loopback host {host} without --ws-token-file"
            )
        with trio.CancelScope() as scope:
            self._listener_scopes.add(scope)
            try:
                await websocket.serve(
                    host,
                    port,
                    self.run_connection,
                    handler_nursery=self._conn_nursery,
                    allowed_origins=self.config.allow_origins,
                    token=self._token,
                    max_message_bytes=self.config.max_message_bytes,
                    task_status=task_status,
                )
                await trio.sleep_forever()
            finally:
                self._listener_scopes.discard(scope)

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
        async with Client.open(client_side) as client:
            yield client

    # --- shutdown -----------------------------------------------------------------------

    async def shutdown(self, *, graceful: bool = True) -> None:
        """PROTOCOL.md §8.8: stop accepting, let turns finish (graceful) for up to
        shutdown_timeout, interrupt the rest, close every connection (1001)."""
        self._shutting_down = True
        for scope in list(self._listener_scopes):
            scope.cancel()
        for conn in list(self._connections):
            conn.close(CLOSE_GOING_AWAY, "server shutting down")
        self._shutdown_done.set()

    def statistics(self) -> dict[str, Any]:
        return {
            "connections": len(self._connections),
            "listeners": len(self._listener_scopes),
            "inflight": sum(c.inflight for c in self._connections),
        }


@asynccontextmanager
async def open_server(config: ServerConfig | None = None) -> AsyncIterator[Server]:
    """Run a server for the duration of the block; leaving it shuts down (§8.8)."""
    config = config or ServerConfig()
    token = config.read_token()
    codex_home = ":memory:" if config.data_dir is None else str(config.data_dir.resolve())
    handlers = Handlers(codex_home=codex_home)
    async with trio.open_nursery() as conn_nursery:
        server = Server(config, handlers, conn_nursery, token)
        try:
            yield server
        finally:
            with trio.CancelScope(shield=True):
                await server.shutdown()
            conn_nursery.cancel_scope.cancel()
