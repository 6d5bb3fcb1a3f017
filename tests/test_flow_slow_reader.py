"""A websocket client that reads slowly but never stops is not a slow consumer
(PROTOCOL.md §2.3), even when one socket write to it lasts longer than STALL_SECONDS:
the server judges a stall by bytes moving, not by how long a write takes."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
import trio
import trio_websocket

from appserver.connection import STALL_SECONDS
from appserver.server import ServerConfig

from support import SchemaChecker

TIMEOUT = 60
QUEUE = 64  # a small outbound queue: a peer taken for stalled overflows it at once
DELTAS = 80
SIZE = 65536  # characters per delta: one batch of the queue is megabytes
CHUNK = 32768  # the client reads this much at a time...
PAUSE = 0.02  # ...after this pause: about 1.6 MB/s, steady...
THROTTLED = 60  # ...for this many deltas (more than the kernel's buffers hold), then fast


@pytest.fixture
def server_config() -> ServerConfig:
    return ServerConfig(data_dir=None, outbound_queue=QUEUE, shutdown_timeout=0.5)


class ThrottledStream(trio.abc.Stream):
    """A TCP stream whose every read takes at most CHUNK bytes after PAUSE, while
    `throttled`."""

    def __init__(self, inner: trio.SocketStream) -> None:
        self._inner = inner
        self.throttled = True

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if not self.throttled:
            return bytes(await self._inner.receive_some(max_bytes))
        await trio.sleep(PAUSE)
        return bytes(await self._inner.receive_some(CHUNK))

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_a_slow_steady_reader_gets_every_delta_of_megabyte_writes(
    ws_url: str, schema_checker: SchemaChecker
) -> None:
    port = int(ws_url.rsplit(":", 1)[1])
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # little kernel buffering
    await sock.connect(("127.0.0.1", port))
    stream = ThrottledStream(trio.SocketStream(sock))
    received: list[dict[str, Any]] = []
    closed: trio_websocket.ConnectionClosed | None = None
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            # trio-websocket's types name only SocketStream and SSLStream; any Stream does.
            ws = await trio_websocket.wrap_client_stream(
                nursery,
                stream,  # type: ignore[arg-type]
                "127.0.0.1",
                "/",
                message_queue_size=1,
                max_message_size=2**25,
            )

            async def call(id_: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
                await ws.send_message(json.dumps({"id": id_, "method": method, "params": params}))
                while True:
                    message: dict[str, Any] = json.loads(await ws.get_message())
                    received.append(message)
                    if message.get("id") == id_:
                        assert "result" in message, message
                        result: dict[str, Any] = message["result"]
                        return result

            await call(1, "initialize", {"clientInfo": {"name": "slow", "version": "0"}})
            thread = await call(2, "thread/start", {"approvalPolicy": "never"})
            script = f"/stream {DELTAS} {SIZE}"
            text = [{"type": "text", "text": script, "text_elements": []}]
            await call(3, "turn/start", {"threadId": thread["thread"]["id"], "input": text})
            started = trio.current_time()
            deltas = 0
            try:
                while True:
                    message = json.loads(await ws.get_message())
                    received.append(message)
                    if message.get("method") == "item/agentMessage/delta":
                        deltas += 1
                        if deltas == THROTTLED:
                            took = trio.current_time() - started
                            stream.throttled = False  # the rest at full speed
                    if message.get("method") == "turn/completed":
                        break
            except trio_websocket.ConnectionClosed as exc:
                closed = exc
            await ws.aclose()
            nursery.cancel_scope.cancel()
    assert closed is None, f"dropped as a slow consumer: {closed.reason}"
    for message in received:
        schema_checker.check(message, None)
    texts = [m["params"]["delta"] for m in received if m.get("method") == "item/agentMessage/delta"]
    assert len(texts) == DELTAS and all(len(t) == SIZE for t in texts)
    # The throttled part took several stall windows (with the old rule, a write lasting
    # longer than one had this reader dropped about 3.5 s in).
    assert took > 4 * STALL_SECONDS, took
