"""websocket transport (trio-websocket): one JSON-RPC message per text frame.

`serve` does the HTTP-level checks before any JSON-RPC: Origin (403) and authentication
(401, `ws_auth.py`), then hands each accepted socket to `on_connection`. `serve_listeners`
runs the same upgrade handler on other listeners (the Unix socket of `unix.py`).

With `HttpRoutes` (the TCP listener), a request without `Connection: upgrade` is plain
HTTP, answered by `http_routes.py`.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import cast

import trio
import trio_websocket

from appserver.jsonrpc.codec import Outbound
from appserver.transports.base import TransportClosed
from appserver.transports.http_routes import LOCAL_ENDPOINT, HttpRoutes, origin_allowed, router
from appserver.transports.ws_auth import SUBPROTOCOL, WsAuthPolicy, authorize_upgrade

log = logging.getLogger("appserver.websocket")

PING_INTERVAL = 30.0
PING_TIMEOUT = 30.0
# A batch over this many bytes is written in steps of it, each counted in `progress`.
PROGRESS_CHUNK = 64 * 1024


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def validate_listen_host(host: str) -> None:
    """Only IP literals and `localhost` are accepted (PROTOCOL.md §2.1)."""
    if host == "localhost":
        return
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError(f"invalid listen host {host!r}: use an IP literal or localhost") from None


class WebSocketTransport:
    kind = "websocket"
    applies_backpressure = False
    half_close = False

    def __init__(
        self,
        ws: trio_websocket.WebSocketConnection,
        *,
        ping_interval: float = PING_INTERVAL,
        ping_timeout: float = PING_TIMEOUT,
    ) -> None:
        self._ws = ws
        self.progress = 0  # bytes written
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout

    @property
    def peer(self) -> str:
        """`host:port` of the other end ("unix socket" on a Unix socket)."""
        try:  # trio-websocket's `remote` raises for a Unix socket (its peer name is "")
            remote = self._ws.remote
        except (ValueError, TypeError, OSError):
            return "unix socket"
        if isinstance(remote, trio_websocket.Endpoint):
            address, port = str(remote.address), str(remote.port)
        else:  # a replayed stream (http_routes.py) is described by its Endpoint's repr
            found = re.search(r'address="([^"]+)", port=(\d+)', remote)
            if found is None:
                return remote or "unix socket"
            address, port = found.groups()
        return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"

    async def receive(self) -> str:
        while True:
            try:
                message = await self._ws.get_message()
            except trio_websocket.ConnectionClosed as exc:
                reason = exc.reason
                code = reason.code if reason is not None else None
                text = (reason.reason or "") if reason is not None else ""
                raise TransportClosed(
                    f"websocket closed: {code} {text}".strip(), code=code
                ) from exc
            if isinstance(message, str):
                return message
            log.info("ignoring a binary frame of %d bytes", len(message))

    async def send_all(self, frames: Sequence[Outbound]) -> None:
        """Write frames in order, all in ONE socket `send_all`: the outbound task drains
        everything queued per wake-up, so a reading client keeps pace with any producer
        (PROTOCOL.md §2.3). A server's frames are unmasked and no extension is ever
        negotiated, so each message's frame bytes are built once (`Outbound.ws_frame`)
        and shared by every subscriber. trio-websocket has no batched send; this writes
        under its stream lock exactly as its own `_send` does, and falls back to
        `send_message` for clients (masked frames) or if those internals are missing.
        `progress` counts the bytes written so far."""
        ws = self._ws
        lock = getattr(ws, "_stream_lock", None)
        stream = getattr(ws, "_stream", None)
        try:
            if lock is None or stream is None or not ws.is_server:
                for frame in frames:
                    await ws.send_message(frame.text)
                return
            if ws.closed is not None:
                raise TransportClosed("websocket closed", code=ws.closed.code)
            data = b"".join([frame.ws_frame for frame in frames])
            async with lock:
                if len(data) <= PROGRESS_CHUNK:
                    await stream.send_all(data)
                    self.progress += len(data)
                    return
                # A big batch goes in steps, counted as they go, so a slow reader that
                # keeps reading is seen to make progress (Connection.stalled).
                with memoryview(data) as view:
                    for start in range(0, len(data), PROGRESS_CHUNK):
                        chunk = view[start : start + PROGRESS_CHUNK]
                        await stream.send_all(chunk)
                        self.progress += len(chunk)
        except (
            trio_websocket.ConnectionClosed,
            trio.BrokenResourceError,
            trio.ClosedResourceError,
        ) as exc:
            raise TransportClosed("websocket closed") from exc

    async def keepalive(self) -> None:
        while True:
            await trio.sleep(self._ping_interval)
            try:
                with trio.move_on_after(self._ping_timeout) as scope:
                    await self._ws.ping()
            except (trio_websocket.ConnectionClosed, trio.BrokenResourceError) as exc:
                raise TransportClosed("websocket closed") from exc
            if scope.cancelled_caught:
                raise TransportClosed("peer did not answer a ping")

    async def aclose(self, code: int = 1000, reason: str = "", *, abort: bool = False) -> None:
        try:
            if not abort:  # after a cut-off frame a close frame would be garbage
                await self._ws.aclose(code, reason or None)
        except (trio_websocket.ConnectionClosed, trio.BrokenResourceError, OSError):
            pass
        finally:
            # trio-websocket (0.12) returns from aclose() early when the connection
            # already has a close reason (e.g. after it sent 1009 itself) and then never
            # closes the TCP stream, so neither peer's socket is released. The server
            # should close TCP first (RFC 6455 §7.1.1); do it explicitly.
            close_stream = getattr(self._ws, "_close_stream", None)
            if close_stream is not None:
                await close_stream()


def _header(request: trio_websocket.WebSocketRequest, name: bytes) -> str | None:
    for key, value in request.headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def make_handler(
    on_connection: Callable[[WebSocketTransport], Awaitable[None]],
    *,
    allowed_origins: Sequence[str] = (),
    auth: WsAuthPolicy | None = None,
    ping_interval: float = PING_INTERVAL,
    ping_timeout: float = PING_TIMEOUT,
) -> Callable[[trio_websocket.WebSocketRequest], Awaitable[None]]:
    """The upgrade handler: Origin (403; `--allow-origin` or the listener's own origin,
    http_routes.py), then authentication (401, ws_auth.py: the Authorization header or
    the bearer subprotocol), both before any JSON-RPC; an accepted socket goes to
    `on_connection`. When the client offers the `appserver` subprotocol it is selected
    (a browser fails a handshake that selects none of its offers)."""
    origins = frozenset(allowed_origins)

    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        origin = _header(request, b"origin")
        if not origin_allowed(origin, origins, LOCAL_ENDPOINT.get()):
            log.warning("refused websocket from origin %r", origin)
            await request.reject(403, body=b"origin not allowed\n")
            return
        offered = request.proposed_subprotocols
        refusal = authorize_upgrade(auth, _header(request, b"authorization"), offered)
        if refusal is not None:
            log.warning("refused websocket: %s", refusal)
            await request.reject(
                401,
                extra_headers=[(b"Content-Type", b"text/plain; charset=utf-8")],
                body=refusal.encode(),
            )
            return
        ws = await request.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        await on_connection(
            WebSocketTransport(ws, ping_interval=ping_interval, ping_timeout=ping_timeout)
        )

    return handler


async def serve_listeners(
    listeners: Sequence[trio.abc.Listener[trio.SocketStream]],
    handler: Callable[[trio_websocket.WebSocketRequest], Awaitable[None]],
    *,
    handler_nursery: trio.Nursery,
    max_message_bytes: int,
    http: HttpRoutes | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve websocket upgrades on the given listeners until cancelled (TCP or Unix);
    with `http`, plain HTTP requests too (see the module doc)."""
    server = trio_websocket.WebSocketServer(
        handler,
        cast("list[trio.SocketListener]", list(listeners)),
        handler_nursery=handler_nursery,
        max_message_size=max_message_bytes,
        message_queue_size=4,
    )
    async with trio.open_nursery() as nursery:
        if http is None:
            await nursery.start(server.run)
        else:
            await nursery.start(
                partial(
                    trio.serve_listeners,
                    router(server, http),
                    list(listeners),
                    handler_nursery=handler_nursery,
                )
            )
        task_status.started()


async def serve(
    host: str,
    port: int,
    on_connection: Callable[[WebSocketTransport], Awaitable[None]],
    *,
    handler_nursery: trio.Nursery,
    allowed_origins: Sequence[str] = (),
    auth: WsAuthPolicy | None = None,
    max_message_bytes: int,
    ping_interval: float = PING_INTERVAL,
    ping_timeout: float = PING_TIMEOUT,
    http: HttpRoutes | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on host:port until cancelled; reports the bound port through task_status.
    With `http`, plain HTTP GETs of /healthz, /readyz and /metrics are answered too."""
    handler = make_handler(
        on_connection,
        allowed_origins=allowed_origins,
        auth=auth,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
    )
    # The listening sockets are ours: closing them when serving ends makes the kernel
    # reset connections still queued in the backlog, so a client that connects after
    # shutdown began is refused instead of waiting forever for a handshake (§8.8).
    listeners = await trio.open_tcp_listeners(port, host=host.strip("[]"))
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(
                    serve_listeners,
                    listeners,
                    handler,
                    handler_nursery=handler_nursery,
                    max_message_bytes=max_message_bytes,
                    http=http,
                )
            )
            task_status.started(listeners[0].socket.getsockname()[1])
    finally:
        for listener in listeners:
            with trio.CancelScope(shield=True):
                await listener.aclose()


__all__ = ["HttpRoutes", "WebSocketTransport", "serve", "serve_listeners"]
