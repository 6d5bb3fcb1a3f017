"""Transports: line framing (unit, in-memory streams), stdio and websocket end to end."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
import trio_websocket
import wsproto
import wsproto.events

from appserver.client import ConnectError, connect_websocket, spawn_stdio
from appserver.jsonrpc import Outbound
from appserver.server import Server, ServerConfig, open_server
from appserver.transports.base import FrameTooLarge, TransportClosed
from appserver.transports.lines import LineTransport

from support import SchemaChecker

TIMEOUT = 15


async def test_line_transport_framing_and_oversize_lines() -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    transport = LineTransport(server_stream, server_stream, max_bytes=10)
    await client_stream.send_all(b'{"a":1}\r\n\n{"b"')
    await client_stream.send_all(b":2}\n" + b"x" * 25)
    await client_stream.send_all(b"y" * 5 + b'\n{"c":3}\n' + b"z" * 11 + b"\n{}")
    await client_stream.send_eof()
    with trio.fail_after(TIMEOUT):
        assert await transport.receive() == '{"a":1}'
        assert await transport.receive() == '{"b":2}'
        with pytest.raises(FrameTooLarge) as info:
            await transport.receive()
        assert info.value.size == 30
        assert await transport.receive() == '{"c":3}'
        with pytest.raises(FrameTooLarge):
            await transport.receive()
        assert await transport.receive() == "{}"  # last line without newline
        with pytest.raises(TransportClosed):
            await transport.receive()


async def test_line_transport_writes_one_line_per_frame() -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    transport = LineTransport(server_stream, server_stream, max_bytes=100)
    await transport.send_all([Outbound("{}"), Outbound('{"é":1}')])
    data = await client_stream.receive_some(100)
    assert data == '{}\n{"é":1}\n'.encode()


async def test_stdio_oversized_line_is_answered_and_connection_continues() -> None:
    with trio.fail_after(TIMEOUT):
        async with spawn_stdio(["--in-memory", "--max-message-bytes", "2000"]) as client:
            await client.send_raw(
                '{"id":1,"method":"initialize","params":{"x":"' + "a" * 5000 + '"}}'
            )
            err = await client.next_notification()
            assert err["id"] is None and err["error"]["code"] == -32600
            assert err["error"]["data"]["kind"] == "messageTooLarge"
            await client.send_raw('{"id":2,"method":"x"\xff}')  # invalid UTF-8 on the wire
            err = await client.next_notification()
            assert err["error"]["code"] == -32700
            result = await client.initialize("after")
            assert result["userAgent"].endswith("(after/0)")
        assert client.process is not None and client.process.returncode == 0


async def test_stdio_overload_beyond_max_inflight() -> None:
    with trio.fail_after(TIMEOUT):
        async with spawn_stdio(["--in-memory", "--max-inflight", "2"]) as client:
            await client.initialize("busy")
            lines = [
                json.dumps({"jsonrpc": "2.0", "id": 100 + i, "method": "thread/list"})
                for i in range(3)
            ]
            await client.send_raw("\n".join(lines))  # one write: all three arrive together
            answers = [await client.next_notification() for _ in range(3)]
            by_id = {a["id"]: a for a in answers}
            assert by_id[102]["error"]["code"] == -32001
            assert by_id[102]["error"]["message"] == "Server overloaded; retry later."
            assert by_id[102]["error"]["data"]["kind"] == "overloaded"
            assert "result" in by_id[100] and "result" in by_id[101]


async def upgrade_status(url: str, token: str | None = None, origin: str | None = None) -> int:
    """Send a raw websocket upgrade request; return the HTTP status of the answer."""
    host, port = url.removeprefix("ws://").rsplit(":", 1)
    headers = [
        "GET / HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]
    if token is not None:
        headers.append(f"Authorization: Bearer {token}")
    if origin is not None:
        headers.append(f"Origin: {origin}")
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(("\r\n".join(headers) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n" not in data:
            chunk = await stream.receive_some(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


@pytest.fixture
async def ws_server(tmp_path: Path, nursery: trio.Nursery) -> tuple[Server, str]:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    config = ServerConfig(
        ws_token_file=token, allow_origins=("https://ok.example",), max_message_bytes=4096
    )
    server: Server = await nursery.start(_serve, config)
    port = await nursery.start(server.serve_websocket, "127.0.0.1", 0)
    return server, f"ws://127.0.0.1:{port}"


async def _serve(config: ServerConfig, *, task_status: trio.TaskStatus[Server]) -> None:
    async with open_server(config) as server:
        task_status.started(server)
        await trio.sleep_forever()


async def test_websocket_token_and_origin_checks(ws_server: tuple[Server, str]) -> None:
    _, url = ws_server
    with trio.fail_after(TIMEOUT):
        for kwargs, status in [
            ({}, 401),
            ({"token": "wrong"}, 401),
            ({"token": "s3cret", "origin": "https://evil.example"}, 403),
            ({"token": "s3cret"}, 101),
        ]:
            assert await upgrade_status(url, **kwargs) == status
        async with connect_websocket(url, token="s3cret", origin="https://ok.example") as client:
            assert (await client.initialize("ok"))["userAgent"].endswith("(ok/0)")


async def test_websocket_oversized_frame_closes_1009_binary_is_ignored(
    ws_server: tuple[Server, str],
) -> None:
    server, url = ws_server
    with trio.fail_after(TIMEOUT):
        async with connect_websocket(url, token="s3cret") as raw:
            await raw.send_raw(b"\x00\x01binary")  # type: ignore[arg-type]
            assert (await raw.initialize("b"))["userAgent"].endswith("(b/0)")
            await raw.send_raw("x" * 10_000)
            await raw.wait_closed()
            assert raw.close_code == 1009
        # Other clients are unaffected.
        async with connect_websocket(url, token="s3cret") as client:
            await client.initialize("other")
        assert server.statistics()["connections"] <= 1


async def test_non_loopback_websocket_without_token_is_refused() -> None:
    async with open_server(ServerConfig()) as server, trio.open_nursery() as nursery:
        with pytest.raises(ValueError, match="without --ws-token-file"):
            await nursery.start(server.serve_websocket, "0.0.0.0", 0)


async def test_refused_websocket_raises_connect_error() -> None:
    # (A rejected handshake, 401/403, also raises ConnectError with its status code, but
    # trio-websocket 0.12's client then leaks its socket, which this suite treats as an
    # error; the rejections themselves are tested above with raw upgrade requests.)
    with trio.fail_after(TIMEOUT):
        with socket.socket() as sock:  # a port nobody listens on
            sock.bind(("127.0.0.1", 0))
            free = sock.getsockname()[1]
        with pytest.raises(ConnectError, match="cannot connect"):
            async with connect_websocket(f"ws://127.0.0.1:{free}"):
                pass


def test_python_api_is_importable_from_the_package() -> None:
    import appserver

    assert appserver.ServerConfig is ServerConfig
    assert appserver.open_server is open_server


async def test_websocket_peer_that_vanishes_is_detected_and_cleaned_up(
    schema_checker: SchemaChecker,
) -> None:
    """§2.2: a peer that stops answering (no pong) is cleaned up like a close: its
    subscriptions go, the thread stays loaded for the others."""
    config = ServerConfig(ws_ping_interval=0.2, ws_ping_timeout=0.2)
    async with open_server(config) as server, trio.open_nursery() as nursery:
        port = await nursery.start(server.serve_websocket, "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{port}"
        with trio.fail_after(TIMEOUT):
            async with connect_websocket(url) as owner:
                owner.observer = schema_checker.check
                await owner.initialize("owner")
                started = await owner.request("thread/start", {})
                thread_id = started["thread"]["id"]
                # A raw peer: handshake, initialize, resume, then total silence (it never
                # reads again, so it never answers a ping).
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                async with stream:
                    await stream.send_all(
                        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        b"Sec-WebSocket-Version: 13\r\n\r\n"
                    )
                    seen = b""
                    while b"\r\n\r\n" not in seen:  # the 101, before any frame (as clients do)
                        seen += await stream.receive_some(65536)
                    for payload in (
                        {
                            "id": 1,
                            "method": "initialize",
                            "params": {"clientInfo": {"name": "v", "version": "1"}},
                        },
                        {"id": 2, "method": "thread/resume", "params": {"threadId": thread_id}},
                    ):
                        await stream.send_all(_masked_text_frame(json.dumps(payload).encode()))
                    # It reads (to see what happens) but never answers a ping.
                    while b'"id":2' not in seen:
                        seen += await stream.receive_some(65536)
                    assert server.statistics()["subscriptions"] == 2, seen
                    while await stream.receive_some(65536):  # until the server drops it
                        pass
                    await trio.testing.wait_all_tasks_blocked()
                    stats = server.statistics()
                    assert stats["connections"] == 1
                    assert stats["subscriptions"] == 1 and stats["loaded"] == 1
                # The well-behaved client keeps working.
                assert (await owner.request("thread/loaded/list"))["data"] == [thread_id]
        nursery.cancel_scope.cancel()


def _masked_text_frame(payload: bytes) -> bytes:
    """A client→server text frame (RFC 6455 §5.2; clients must mask)."""
    mask = b"\x01\x02\x03\x04"
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    size = len(payload)
    if size < 126:
        header = bytes((0x81, 0x80 | size))
    else:
        header = bytes((0x81, 0x80 | 126)) + size.to_bytes(2, "big")
    return header + mask + body


async def test_websocket_server_answers_pings_and_reads_frames_split_anyhow(
    ws_server: tuple[Server, str],
) -> None:
    """The server's own framing (transports/ws_server.py): a client's ping is answered
    between requests, and a request whose frame arrives one byte per TCP write, or
    fragmented into continuation frames, is read whole."""
    _, url = ws_server
    port = int(url.rsplit(":", 1)[1])
    with trio.fail_after(TIMEOUT):
        async with trio_websocket.open_websocket_url(
            url, extra_headers=[(b"Authorization", b"Bearer s3cret")]
        ) as ws:
            await ws.ping(b"are you there")  # returns when the pong arrived
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
            request = wsproto.events.Request(
                host="127.0.0.1",
                target="/",
                extra_headers=[(b"authorization", b"Bearer s3cret")],
            )
            await stream.send_all(client.send(request))
            events: list[Any] = []

            async def until(kind: type) -> Any:
                while not any(isinstance(e, kind) for e in events):
                    client.receive_data(await stream.receive_some(65536))
                    events.extend(client.events())
                found = next(e for e in events if isinstance(e, kind))
                events.remove(found)
                return found

            await until(wsproto.events.AcceptConnection)
            init = json.dumps(
                {
                    "id": 1,
                    "method": "initialize",
                    "params": {"clientInfo": {"name": "s", "version": "0"}},
                }
            )
            for byte in client.send(wsproto.events.TextMessage(init)):
                await stream.send_all(bytes([byte]))
            assert "result" in json.loads((await until(wsproto.events.TextMessage)).data)
            listing = json.dumps({"id": 2, "method": "thread/loaded/list"})
            half = len(listing) // 2
            await stream.send_all(
                client.send(wsproto.events.TextMessage(listing[:half], message_finished=False))
                + client.send(wsproto.events.Ping(b"p"))
                + client.send(wsproto.events.TextMessage(listing[half:]))
            )
            await until(wsproto.events.Pong)
            answer = json.loads((await until(wsproto.events.TextMessage)).data)
            assert answer["id"] == 2 and answer["result"]["data"] == []
