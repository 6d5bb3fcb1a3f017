"""websocket authentication at the handshake (--ws-auth, transports/ws_auth.py), as the
Codex app-server 0.171 does it: capability token (file or SHA-256) and HS256 JWT."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import trio

from appserver.client import connect_websocket
from appserver.server import ServerConfig, open_server
from appserver.transports.ws_auth import (
    CapabilityToken,
    SignedBearerToken,
    WsAuthError,
    WsAuthSettings,
    authorize,
)

from support import run_ws_server

TIMEOUT = 20
SECRET = "s" * 40
TOKEN = "capability-token-value"


def bearer(token: str) -> str:
    return f"Bearer {token}"


def signed(claims: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


# --- the policies themselves ------------------------------------------------------------


def test_bearer_header_forms_as_the_reference() -> None:
    policy = CapabilityToken(hashlib.sha256(TOKEN.encode()).digest())
    assert authorize(policy, bearer(TOKEN)) is None
    assert authorize(policy, f"bearer   {TOKEN} ") is None  # scheme is case-insensitive
    assert authorize(policy, None) == "missing websocket bearer token"
    assert authorize(policy, "Bearer wrong") == "invalid websocket bearer token"
    for bad in ("Basic abc", "Bearer", "Bearer   ", TOKEN):
        assert authorize(policy, bad) == "invalid authorization header", bad
    assert authorize(None, None) is None  # no policy: nothing is checked


def test_signed_bearer_token_claims() -> None:
    now = int(time.time())
    policy = SignedBearerToken(
        shared_secret=SECRET.encode(), issuer="iss-a", audience="aud-a", max_clock_skew_seconds=30
    )
    good = {"exp": now + 60, "iss": "iss-a", "aud": "aud-a"}
    assert authorize(policy, bearer(signed(good))) is None
    assert authorize(policy, bearer(signed({**good, "aud": ["x", "aud-a"]}))) is None
    assert authorize(policy, bearer(signed({**good, "exp": now - 10}))) is None  # within skew
    cases = [
        (signed(good, secret="t" * 40), "invalid websocket jwt"),
        (signed({**good, "exp": now - 120}), "expired websocket jwt"),
        (signed({**good, "nbf": now + 120}), "websocket jwt is not valid yet"),
        (signed({**good, "iss": "other"}), "websocket jwt issuer mismatch"),
        (signed({"exp": now + 60, "aud": "aud-a"}), "websocket jwt issuer mismatch"),
        (signed({**good, "aud": "other"}), "websocket jwt audience mismatch"),
        (signed({"iss": "iss-a", "aud": "aud-a"}), "invalid websocket jwt"),  # exp required
        (jwt.encode(good, SECRET * 2, algorithm="HS512"), "invalid websocket jwt"),
        ("not.a.jwt", "invalid websocket jwt"),
    ]
    for token, reason in cases:
        assert authorize(policy, bearer(token)) == reason
    # Without configured iss/aud, neither is checked.
    loose = SignedBearerToken(shared_secret=SECRET.encode())
    assert authorize(loose, bearer(signed({"exp": now + 60, "aud": "any", "iss": "x"}))) is None


def test_settings_are_validated_like_the_reference(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"  {TOKEN}\n")
    short = tmp_path / "short"
    short.write_text("too short")
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    loaded = WsAuthSettings(token_file=token_file).load()  # --ws-token-file alone still works
    assert loaded == CapabilityToken(bytes.fromhex(digest))
    assert WsAuthSettings(token_sha256=digest.upper()).load() == loaded
    assert WsAuthSettings().load() is None
    errors = [
        (WsAuthSettings(mode="capability-token"), "is required"),
        (WsAuthSettings(token_file=token_file, token_sha256=digest), "mutually exclusive"),
        (WsAuthSettings(token_sha256="zz"), "64-character hex"),
        (WsAuthSettings(token_file=tmp_path / "missing"), "cannot read"),
        (WsAuthSettings(mode="signed-bearer-token"), "--ws-shared-secret-file is required"),
        (WsAuthSettings(mode="signed-bearer-token", shared_secret_file=short), "32 bytes"),
        (WsAuthSettings(mode="signed-bearer-token", token_file=token_file), "capability-token"),
        (WsAuthSettings(issuer="x"), "require --ws-auth signed-bearer-token"),
        (WsAuthSettings(mode="capability-token", token_file=token_file, audience="a"), "require"),
    ]
    for settings, needle in errors:
        with pytest.raises(WsAuthError, match=needle):
            settings.load()


# --- end to end: a real websocket listener -----------------------------------------------


async def upgrade(url: str, authorization: str | None) -> tuple[int, bytes]:
    """A raw upgrade request; the HTTP status and body of the answer."""
    host, port = url.removeprefix("ws://").rsplit(":", 1)
    lines = [
        "GET / HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while True:
            chunk = await stream.receive_some(4096)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep and (b" 101 " in head.split(b"\r\n")[0] or body):
                break
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


@pytest.fixture
async def serve(nursery: trio.Nursery) -> AsyncIterator[Any]:
    async def start(config: ServerConfig) -> str:
        async def run(*, task_status: trio.TaskStatus[str]) -> None:
            async with open_server(config) as server:
                port = await nursery.start(server.serve_websocket, "127.0.0.1", 0)
                task_status.started(f"ws://127.0.0.1:{port}")
                await trio.sleep_forever()

        url: str = await nursery.start(run)
        return url

    yield start
    nursery.cancel_scope.cancel()


async def test_capability_token_from_file_and_sha256(tmp_path: Path, serve: Any) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    with trio.fail_after(TIMEOUT):
        for config in (
            ServerConfig(ws_auth="capability-token", ws_token_file=token_file),
            ServerConfig(ws_auth="capability-token", ws_token_sha256=digest),
        ):
            url = await serve(config)
            assert await upgrade(url, None) == (401, b"missing websocket bearer token")
            assert await upgrade(url, bearer("wrong")) == (401, b"invalid websocket bearer token")
            assert (await upgrade(url, bearer(TOKEN)))[0] == 101
            async with connect_websocket(url, token=TOKEN) as client:
                assert (await client.initialize("cap"))["userAgent"].endswith("(cap/0)")


async def test_signed_bearer_token_end_to_end(tmp_path: Path, serve: Any) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    config = ServerConfig(
        ws_auth="signed-bearer-token",
        ws_shared_secret_file=secret_file,
        ws_issuer="issuer-1",
        ws_audience="appserver",
        ws_max_clock_skew_seconds=5,
    )
    now = int(time.time())
    good = {"exp": now + 300, "nbf": now - 1, "iss": "issuer-1", "aud": "appserver"}
    with trio.fail_after(TIMEOUT):
        url = await serve(config)
        refused = {
            "wrong secret": signed(good, secret="w" * 40),
            "expired beyond skew": signed({**good, "exp": now - 60}),
            "wrong issuer": signed({**good, "iss": "issuer-2"}),
            "wrong audience": signed({**good, "aud": "someone-else"}),
        }
        for why, token in refused.items():
            status, _ = await upgrade(url, bearer(token))
            assert status == 401, why
        assert await upgrade(url, None) == (401, b"missing websocket bearer token")
        async with connect_websocket(url, token=signed(good)) as client:
            assert (await client.initialize("jwt"))["userAgent"].endswith("(jwt/0)")
            assert (await client.request("thread/start", {}))["thread"]["id"]


async def test_cli_wires_the_flags(tmp_path: Path) -> None:
    """The real CLI: --ws-auth capability-token --ws-token-sha256 (401 / connect)."""
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    args = ("--in-memory", "--ws-auth", "capability-token", "--ws-token-sha256", digest)
    with trio.fail_after(TIMEOUT):
        async with run_ws_server(*args) as server:
            assert (await upgrade(server.url, bearer("nope")))[0] == 401
            async with connect_websocket(server.url, token=TOKEN) as client:
                await client.initialize("cli")
        assert server.process.returncode == 0
