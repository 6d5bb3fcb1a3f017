"""Plain HTTP on the websocket port (the TCP listener).

A request without `Connection: upgrade` is answered here as the Codex app-server does:
`GET`/`HEAD` `/healthz` and `/readyz` (200, empty body, no token needed; `/readyz` is 503
while the server shuts down), `/metrics` (Prometheus text; the bearer token is required
when one is configured), 405 for other methods on those paths, 400 "Connection header did
not include 'upgrade'" for any other path; an Origin not allowed is 403 as for the
upgrade. trio-websocket itself cannot answer a request that is not an upgrade (wsproto
rejects it before the handler runs), so the request head is read first and, for an
upgrade, replayed to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import attrs
import trio
import trio_websocket

from appserver.transports.ws_auth import WsAuthPolicy, authorize

HTTP_HEAD_LIMIT = 16384  # a longer request head goes to trio-websocket, which refuses it
HTTP_HEAD_TIMEOUT = 60.0  # as trio-websocket's connect timeout
NOT_UPGRADE = b"Connection header did not include 'upgrade'"


@attrs.frozen
class HttpRoutes:
    """What the plain-HTTP routes read: readiness and the metrics exposition."""

    ready: Callable[[], bool]
    metrics: Callable[[], tuple[str, bytes]]  # (content type, body)
    allowed_origins: frozenset[str] = frozenset()
    auth: WsAuthPolicy | None = None


class _Replayed(trio.abc.Stream):
    """A stream whose first bytes (the request head already read) are given back first."""

    def __init__(self, stream: trio.SocketStream, prefix: bytes) -> None:
        self._stream, self._prefix = stream, prefix
        # trio-websocket describes a stream that is not a SocketStream (its `remote`) by
        # its repr: make that the peer's Endpoint, as it would be.
        try:
            address, port, *_ = stream.socket.getpeername()
            self._repr = repr(trio_websocket.Endpoint(address, port, is_ssl=False))
        except (OSError, ValueError, TypeError):
            self._repr = repr(stream)

    def __repr__(self) -> str:
        return self._repr

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self._prefix:
            data = self._prefix if max_bytes is None else self._prefix[:max_bytes]
            self._prefix = self._prefix[len(data) :]
            return data
        return await self._stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self._stream.aclose()


async def _read_head(stream: trio.abc.Stream) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head and len(head) <= HTTP_HEAD_LIMIT:
        chunk = await stream.receive_some(4096)
        if not chunk:
            break
        head += chunk
    return head


def _parse_head(head: bytes) -> tuple[str, str, dict[bytes, str]] | None:
    """(method, path, headers) of a complete request head, else None."""
    if b"\r\n\r\n" not in head:
        return None
    lines = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        return None
    headers: dict[bytes, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower()] = value.strip().decode("latin-1")
    path = parts[1].split(b"?", 1)[0].decode("latin-1")
    return parts[0].decode("latin-1"), path, headers


def _http_response(
    status: int, reason: str, headers: Sequence[tuple[str, str]], body: bytes, head_only: bool
) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers)]
    lines += [f"content-length: {len(body)}", "connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + (b"" if head_only else body)


def _answer(routes: HttpRoutes, method: str, path: str, headers: dict[bytes, str]) -> bytes:
    head_only = method == "HEAD"
    text = [("content-type", "text/plain; charset=utf-8")]
    origin = headers.get(b"origin")
    if origin is not None and origin not in routes.allowed_origins:
        return _http_response(403, "Forbidden", [], b"", head_only)
    if path not in ("/healthz", "/readyz", "/metrics"):
        return _http_response(400, "Bad Request", text, NOT_UPGRADE, head_only)
    if method not in ("GET", "HEAD"):
        return _http_response(405, "Method Not Allowed", [("allow", "GET,HEAD")], b"", head_only)
    if path == "/healthz":
        return _http_response(200, "OK", [], b"", head_only)
    if path == "/readyz":
        if routes.ready():
            return _http_response(200, "OK", [], b"", head_only)
        return _http_response(503, "Service Unavailable", [], b"", head_only)
    refusal = authorize(routes.auth, headers.get(b"authorization"))
    if refusal is not None:
        return _http_response(401, "Unauthorized", text, refusal.encode(), head_only)
    content_type, body = routes.metrics()
    return _http_response(200, "OK", [("content-type", content_type)], body, head_only)


def router(
    server: trio_websocket.WebSocketServer, routes: HttpRoutes
) -> Callable[[trio.SocketStream], Awaitable[None]]:
    async def route(stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(HTTP_HEAD_TIMEOUT) as scope:
                head = await _read_head(stream)
                parsed = _parse_head(head)
                connection = "" if parsed is None else parsed[2].get(b"connection", "")
                tokens = {token.strip().lower() for token in connection.split(",")}
                if parsed is not None and "upgrade" not in tokens:
                    response = _answer(routes, *parsed)
                    await stream.send_all(response)
                    await stream.aclose()
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await stream.aclose()
            return
        if scope.cancelled_caught or not head:
            await stream.aclose()
            return
        # An upgrade (or a head trio-websocket should refuse): its own handling, as
        # WebSocketServer.run would do it, with the head given back.
        await server._handle_connection(_Replayed(stream, head))

    return route
