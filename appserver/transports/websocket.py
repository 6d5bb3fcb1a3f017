"""websocket: one JSON-RPC message per text frame.

The server side is framed by wsproto on the socket itself (`ServerWebSocket`,
ws_server.py); `WebSocketTransport` is the client side's, over trio-websocket
(client_connect.py). `serve` does the HTTP-level checks before any JSON-RPC: Origin
(403) and authentication (401, `ws_auth.py`), then hands each accepted socket to
`on_connection`. `serve_listeners` runs the same upgrade handler on other listeners (the
Unix socket of `unix.py`).

With `HttpRoutes` (the TCP listener), a request without `Connection: upgrade` is plain
HTTP, answered by `http_routes.py`.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import trio
import trio_websocket
from wsproto.events import Request

from appserver.jsonrpc.codec import Outbound
from appserver.transports.base import TransportClosed
from appserver.transports.http_routes import LOCAL_ENDPOINT, HttpRoutes, origin_allowed, router
from appserver.transports.ws_auth import SUBPROTOCOL, WsAuthPolicy, authorize_upgrade
from appserver.transports.ws_server import Refusal, ServerWebSocket, upgrade

log = logging.getLogger("appserver.websocket")

PING_INTERVAL = 30.0
PING_TIMEOUT = 30.0


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
        self.progress = 0  # messages written
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout

    @property
    def peer(self) -> str:
        """`host:port` of the other end ("unix socket" on a Unix socket)."""
        try:  # trio-websocket's `remote` raises for a Unix socket (its peer name is "")
            remote = self._ws.remote
        except (ValueError, TypeError, OSError):
            return "unix socket"
        if not isinstance(remote, trio_websocket.Endpoint):
            return remote or "unix socket"
        address, port = str(remote.address), str(remote.port)
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
        """Write frames in order, one message each (a client's frames are masked, so
        trio-websocket frames them). `progress` counts the messages written."""
        try:
            for frame in frames:
                await self._ws.send_message(frame.text)
                self.progress += 1
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


def _header(request: Request, name: bytes) -> str | None:
    for key, value in request.extra_headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


Upgrade = Callable[[trio.SocketStream, bytes], Awaitable[None]]


def make_handler(
    on_connection: Callable[[ServerWebSocket], Awaitable[None]],
    *,
    allowed_origins: Sequence[str] = (),
    auth: WsAuthPolicy | None = None,
    max_message_bytes: int,
    ping_interval: float = PING_INTERVAL,
    ping_timeout: float = PING_TIMEOUT,
) -> Upgrade:
    """The upgrade handler (given the stream and the request head read so far): Origin
    (403; `--allow-origin` or the listener's own origin, http_routes.py), then
    authentication (401, ws_auth.py: the Authorization header or the bearer subprotocol),
    both before any JSON-RPC; an accepted socket goes to `on_connection` as a
    `ServerWebSocket` (ws_server.py). When the client offers the `appserver` subprotocol
    it is selected (a browser fails a handshake that selects none of its offers)."""
    origins = frozenset(allowed_origins)

    def decide(request: Request) -> str | None:
        origin = _header(request, b"origin")
        if not origin_allowed(origin, origins, LOCAL_ENDPOINT.get()):
            log.warning("refused websocket from origin %r", origin)
            raise Refusal(403, b"origin not allowed\n")
        offered = list(request.subprotocols)
        refusal = authorize_upgrade(auth, _header(request, b"authorization"), offered)
        if refusal is not None:
            log.warning("refused websocket: %s", refusal)
            text_plain = [(b"Content-Type", b"text/plain; charset=utf-8")]
            raise Refusal(401, refusal.encode(), text_plain)
        return SUBPROTOCOL if SUBPROTOCOL in offered else None

    async def handler(stream: trio.SocketStream, head: bytes) -> None:
        await upgrade(
            stream,
            head,
            decide,
            on_connection,
            max_message_bytes=max_message_bytes,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
        )

    return handler


async def serve_listeners(
    listeners: Sequence[trio.abc.Listener[trio.SocketStream]],
    handler: Upgrade,
    *,
    handler_nursery: trio.Nursery,
    http: HttpRoutes | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve websocket upgrades on the given listeners until cancelled (TCP or Unix);
    with `http`, plain HTTP requests too (see the module doc)."""
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(
                trio.serve_listeners,
                router(handler, http),
                list(listeners),
                handler_nursery=handler_nursery,
            )
        )
        task_status.started()


async def serve(
    host: str,
    port: int,
    on_connection: Callable[[ServerWebSocket], Awaitable[None]],
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
        max_message_bytes=max_message_bytes,
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
                    http=http,
                )
            )
            task_status.started(listeners[0].socket.getsockname()[1])
    finally:
        for listener in listeners:
            with trio.CancelScope(shield=True):
                await listener.aclose()


__all__ = ["HttpRoutes", "ServerWebSocket", "WebSocketTransport", "serve", "serve_listeners"]
