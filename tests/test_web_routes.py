"""The browser client's HTTP side on a real server process: the page and its assets
(`GET /`, fixed names, headers), the listener's own origin, and the token carried in a
websocket subprotocol (WEB-CLIENT.md 1 and 11), with trio-websocket as a plain client."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import trio
import trio_websocket

from appserver.transports.http_routes import own_origins
from appserver.transports.ws_auth import authorize_upgrade, subprotocol_token
from appserver.web import ASSETS

from support import run_ws_server

TIMEOUT = 20
TOKEN = "web-token/with+odd=chars~"


def http(ws_url: str, path: str = "/") -> str:
    return ws_url.replace("ws://", "http://", 1) + path


def bearer_protocol(token: str) -> str:
    encoded = base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
    return "appserver.bearer." + encoded


async def refused(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """A raw upgrade request expected to be refused: (HTTP status, body). (trio-websocket
    leaks its socket when a handshake is rejected, so refusals are read by hand.)"""
    host, port = url.removeprefix("ws://").rsplit(":", 1)
    lines = [
        "GET / HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := await stream.receive_some(4096):
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            length = [ln for ln in head.lower().split(b"\r\n") if ln.startswith(b"content-length:")]
            if sep and len(body) >= (int(length[0].split(b":")[1]) if length else 0):
                break
    return int(data.split(b" ", 2)[1]), data.partition(b"\r\n\r\n")[2]


async def test_the_page_and_its_assets() -> None:
    with trio.fail_after(TIMEOUT):
        async with run_ws_server("--in-memory") as server, httpx.AsyncClient() as client:
            page = await client.get(http(server.url))
            assert page.status_code == 200
            assert page.headers["content-type"] == "text/html; charset=utf-8"
            assert page.headers["cache-control"] == "no-cache"
            assert page.headers["x-content-type-options"] == "nosniff"
            csp = page.headers["content-security-policy"]
            assert "default-src 'none'" in csp and "script-src 'self'" in csp
            assert "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert '<script type="module" src="app.js">' in page.text
            for path, (_, content_type) in ASSETS.items():
                got = await client.get(http(server.url, path))
                assert got.status_code == 200, path
                assert got.headers["content-type"] == content_type
                assert got.content, path
                again = await client.get(
                    http(server.url, path), headers={"If-None-Match": got.headers["etag"]}
                )
                assert (again.status_code, again.content) == (304, b"")
            head = await client.head(http(server.url, "/app.js"))
            assert head.status_code == 200 and head.content == b""
            posted = await client.post(http(server.url))
            assert (posted.status_code, posted.headers["allow"]) == (405, "GET,HEAD")
            config = await client.get(http(server.url, "/config.json"))
            assert config.json() == {"tokenRequired": False}
            # Only the fixed names: anything else is as before (the reference's 400).
            for path in ("/web/app.js", "/../pyproject.toml", "/%2e%2e/app.js", "/__init__.py"):
                other = await client.get(http(server.url, path))
                assert other.status_code == 400, path
                assert other.text == "Connection header did not include 'upgrade'"


async def test_own_origin_is_allowed_for_page_and_websocket() -> None:
    with trio.fail_after(TIMEOUT):
        async with run_ws_server("--in-memory") as server, httpx.AsyncClient() as client:
            port = server.url.rsplit(":", 1)[1]
            for origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
                got = await client.get(http(server.url), headers={"Origin": origin})
                assert got.status_code == 200, origin
                async with trio_websocket.open_websocket_url(
                    server.url, extra_headers=[(b"Origin", origin.encode())]
                ) as ws:
                    assert ws.subprotocol is None
            for origin in (
                "http://evil.example",
                f"http://evil.example:{port}",  # a DNS-rebound name: never the own origin
                f"http://127.0.0.1:{int(port) + 1}",
                f"https://127.0.0.1:{port}",
                "null",
            ):
                got = await client.get(http(server.url), headers={"Origin": origin})
                assert got.status_code == 403, origin
                status, _ = await refused(server.url, {"Origin": origin})
                assert status == 403, origin


async def test_bearer_token_in_a_subprotocol(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with trio.fail_after(TIMEOUT):
        async with (
            run_ws_server("--in-memory", "--ws-token-file", str(token_file)) as server,
            httpx.AsyncClient() as client,
        ):
            page = await client.get(http(server.url))  # a navigation carries no token
            assert page.status_code == 200
            config = await client.get(http(server.url, "/config.json"))
            assert config.json() == {"tokenRequired": True}
            async with trio_websocket.open_websocket_url(
                server.url, subprotocols=[bearer_protocol(TOKEN), "appserver"]
            ) as ws:
                assert ws.subprotocol == "appserver"
                await ws.send_message(
                    '{"id": 1, "method": "initialize", '
                    '"params": {"clientInfo": {"name": "plain", "version": "1"}}}'
                )
                assert '"userAgent"' in await ws.get_message()
            for protocols, reason in (
                ([bearer_protocol("wrong"), "appserver"], b"invalid websocket bearer token"),
                (["appserver.bearer.%%%", "appserver"], b"invalid websocket bearer subprotocol"),
                (["appserver.bearer.", "appserver"], b"invalid websocket bearer subprotocol"),
                (["appserver"], b"missing websocket bearer token"),
            ):
                offer = {"Sec-WebSocket-Protocol": ", ".join(protocols)}
                assert await refused(server.url, offer) == (401, reason)
            # The Authorization header still works, and wins over the subprotocol.
            async with trio_websocket.open_websocket_url(
                server.url,
                subprotocols=[bearer_protocol("wrong"), "appserver"],
                extra_headers=[(b"Authorization", f"Bearer {TOKEN}".encode())],
            ) as ws:
                assert ws.subprotocol == "appserver"
            metrics = await client.get(http(server.url, "/metrics"))
            assert metrics.status_code == 401  # the page's files are public, /metrics not
        log = "\n".join(server.stderr_lines)
        assert TOKEN not in log and bearer_protocol(TOKEN) not in log
        assert bearer_protocol(TOKEN).removeprefix("appserver.bearer.") not in log


def test_subprotocol_parsing() -> None:
    assert subprotocol_token(["appserver"]) == (None, None)
    assert subprotocol_token([bearer_protocol("abc"), "appserver"]) == ("abc", None)
    padded = "appserver.bearer." + base64.urlsafe_b64encode(b"abcd").decode()
    assert subprotocol_token([padded]) == (None, "invalid websocket bearer subprotocol")
    assert authorize_upgrade(None, None, ["appserver.bearer.!!"]) is None  # no policy


def test_own_origins() -> None:
    assert own_origins(("127.0.0.1", 8080)) == {"http://127.0.0.1:8080", "http://localhost:8080"}
    assert own_origins(("::1", 9000)) == {"http://[::1]:9000", "http://localhost:9000"}
    assert own_origins(("::ffff:127.0.0.1", 81)) == {"http://127.0.0.1:81", "http://localhost:81"}
    assert own_origins(("192.168.1.5", 80)) == {"http://192.168.1.5"}
    assert own_origins(("fe80::1%eth0", 7000)) == {"http://[fe80::1]:7000"}
    assert own_origins(None) == frozenset()
