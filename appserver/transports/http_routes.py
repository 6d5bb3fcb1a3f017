"""Plain HTTP on the websocket port (the TCP listener).

A request without `Connection: upgrade` is answered here as the Codex app-server does:
`GET`/`HEAD` `/healthz` and `/readyz` (200, empty body, no token needed; `/readyz` is 503
while the server shuts down), `/metrics` (Prometheus text; the bearer token is required
when one is configured), 405 for other methods on those paths, 400 "Connection header did
not include 'upgrade'" for any other path; an Origin not allowed is 403 as for the
upgrade. The request head is read first; an upgrade goes with its head to the websocket
handshake (ws_server.py).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar

import attrs
import trio

from appserver.transports.ws_auth import WsAuthPolicy, authorize
from appserver.web import CONTENT_SECURITY_POLICY, Asset

HTTP_HEAD_LIMIT = 16384  # a longer request head goes to the handshake, which drops it
HTTP_HEAD_TIMEOUT = 60.0  # for the whole request head
NOT_UPGRADE = b"Connection header did not include 'upgrade'"

# (local IP, port) of the TCP connection being handled, for the upgrade handler.
LOCAL_ENDPOINT: ContextVar[tuple[str, int] | None] = ContextVar("LOCAL_ENDPOINT", default=None)


def own_origins(local: tuple[str, int] | None) -> frozenset[str]:
    """The origins that name the socket a request came in on (see the module doc)."""
    if local is None:
        return frozenset()
    address, port = local
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return frozenset()
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    hosts = [f"[{ip.compressed}]" if ip.version == 6 else str(ip)]
    if ip.is_loopback:
        hosts.append("localhost")
    suffix = "" if port == 80 else f":{port}"
    return frozenset(f"http://{host}{suffix}" for host in hosts)


def origin_allowed(
    origin: str | None, allowed: frozenset[str], local: tuple[str, int] | None
) -> bool:
    """No Origin (not a browser), one of `--allow-origin`, or the listener's own."""
    return origin is None or origin in allowed or origin.lower() in own_origins(local)


def _local_endpoint(stream: trio.SocketStream) -> tuple[str, int] | None:
    try:
        address, port, *_ = stream.socket.getsockname()
    except (OSError, ValueError, TypeError):
        return None
    return (str(address), int(port)) if isinstance(port, int) else None


@attrs.frozen
class HttpRoutes:
    """What the plain-HTTP routes read: readiness and the metrics exposition."""

    ready: Callable[[], bool]
    metrics: Callable[[], tuple[str, bytes]]  # (content type, body)
    allowed_origins: frozenset[str] = frozenset()
    auth: WsAuthPolicy | None = None
    assets: Mapping[str, Asset] = attrs.field(factory=dict)  # the browser client (web/)


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


def _static(asset: Asset, method: str, headers: dict[bytes, str]) -> bytes:
    head_only = method == "HEAD"
    if method not in ("GET", "HEAD"):
        return _http_response(405, "Method Not Allowed", [("allow", "GET,HEAD")], b"", head_only)
    common = [
        ("etag", asset.etag),
        # Revalidate every time (cheap: 304 by ETag), so an upgrade is picked up at once.
        ("cache-control", "no-cache"),
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
    ]
    if headers.get(b"if-none-match") == asset.etag:
        return _http_response(304, "Not Modified", common, b"", True)
    return _http_response(
        200, "OK", [("content-type", asset.content_type), *common], asset.body, head_only
    )


def _answer(
    routes: HttpRoutes,
    method: str,
    path: str,
    headers: dict[bytes, str],
    local: tuple[str, int] | None = None,
) -> bytes:
    head_only = method == "HEAD"
    text = [("content-type", "text/plain; charset=utf-8")]
    if not origin_allowed(headers.get(b"origin"), routes.allowed_origins, local):
        return _http_response(403, "Forbidden", [], b"", head_only)
    asset = routes.assets.get(path)
    if asset is not None:
        return _static(asset, method, headers)
    if path == "/config.json" and routes.assets:  # what the page must ask before connecting
        if method not in ("GET", "HEAD"):
            allow = [("allow", "GET,HEAD")]
            return _http_response(405, "Method Not Allowed", allow, b"", head_only)
        body = json.dumps({"tokenRequired": routes.auth is not None}).encode()
        json_headers = [("content-type", "application/json"), ("cache-control", "no-store")]
        return _http_response(200, "OK", json_headers, body, head_only)
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
    upgrade: Callable[[trio.SocketStream, bytes], Awaitable[None]], routes: HttpRoutes | None
) -> Callable[[trio.SocketStream], Awaitable[None]]:
    """Per accepted stream: read the request head; plain HTTP (with `routes`) is answered
    here, anything else (an upgrade, or a head wsproto should refuse) goes to `upgrade`
    with the head."""

    async def route(stream: trio.SocketStream) -> None:
        local = _local_endpoint(stream)
        LOCAL_ENDPOINT.set(local)  # this connection's task only; read by make_handler
        try:
            with trio.move_on_after(HTTP_HEAD_TIMEOUT) as scope:
                head = await _read_head(stream)
                parsed = _parse_head(head)
                connection = "" if parsed is None else parsed[2].get(b"connection", "")
                tokens = {token.strip().lower() for token in connection.split(",")}
                if routes is not None and parsed is not None and "upgrade" not in tokens:
                    response = _answer(routes, *parsed, local)
                    await stream.send_all(response)
                    await stream.aclose()
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await stream.aclose()
            return
        if scope.cancelled_caught or not head:
            await stream.aclose()
            return
        await upgrade(stream, head)

    return route
