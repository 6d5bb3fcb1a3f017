"""A websocket reader that reads slowly but never stops is not a slow consumer (PROTOCOL.md
§2.3) while waiting for it delays nobody: a thread's only subscriber, or slow readers
together. Over loopback the kernel frees a reader's receive buffer a whole coalesced
segment at a time: a reader of 100 KB/s behind a default 128 KiB buffer leaves the
server's socket taking nothing for about 1.3 s, again and again, longer than
STALL_SECONDS. While no other subscriber is hungry the producer waits for such a reader
until its socket has taken nothing for LONE_STALL_SECONDS."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio_websocket

from appserver.client_connect import connect_websocket
from appserver.connection import LONE_STALL_SECONDS, STALL_SECONDS
from appserver.server import Server, ServerConfig
from appserver.transports.websocket import WebSocketTransport

from support import SchemaChecker

TIMEOUT = 60
READ = 4096  # the client reads this much at a time...
RATE = 100_000  # ...at this many bytes per second
DELTAS = 1500  # /stream DELTAS 16: about 450 KB of frames, several receive buffers


QUEUE = 64  # the outbound queue of the stalled-peer test


@pytest.fixture
def server_config() -> ServerConfig:
    return ServerConfig(data_dir=None, outbound_queue=QUEUE, shutdown_timeout=0.5)


class SlowStream(trio.abc.Stream):
    """A TCP stream whose every read takes at most READ bytes, at RATE bytes/s."""

    def __init__(self, inner: trio.SocketStream) -> None:
        self._inner = inner

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.sleep(READ / RATE)  # the reader's pace, not synchronisation
        return bytes(await self._inner.receive_some(READ))

    async def aclose(self) -> None:
        await self._inner.aclose()


class SlowReader:
    """A trio-websocket client over a SlowStream that records what it receives."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []
        self.closed: trio_websocket.ConnectionClosed | None = None
        self._ids = 0

    @classmethod
    @asynccontextmanager
    async def open(cls, port: int) -> AsyncIterator[SlowReader]:
        stream = SlowStream(await trio.open_tcp_stream("127.0.0.1", port))
        async with stream, trio.open_nursery() as nursery:
            ws = await trio_websocket.wrap_client_stream(
                nursery,
                stream,  # type: ignore[arg-type]  # any Stream does
                "127.0.0.1",
                "/",
                message_queue_size=1,
            )
            yield cls(ws)
            await ws.aclose()
            nursery.cancel_scope.cancel()

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._ids += 1
        id_ = self._ids
        await self.ws.send_message(json.dumps({"id": id_, "method": method, "params": params}))
        while True:
            message: dict[str, Any] = json.loads(await self.ws.get_message())
            self.received.append(message)
            if message.get("id") == id_:
                assert "result" in message, message
                result: dict[str, Any] = message["result"]
                return result

    async def read_turn(self) -> None:
        """Until turn/completed, or until the server closes the connection."""
        try:
            while True:
                message = json.loads(await self.ws.get_message())
                self.received.append(message)
                if message.get("method") == "turn/completed":
                    return
        except trio_websocket.ConnectionClosed as exc:
            self.closed = exc

    def check(self, schema_checker: SchemaChecker) -> None:
        assert self.closed is None, f"dropped: {self.closed.reason}"
        for message in self.received:
            schema_checker.check(message, None)
        deltas = [m for m in self.received if m.get("method") == "item/agentMessage/delta"]
        assert len(deltas) == DELTAS


async def test_a_lone_slow_reader_gets_every_delta(
    ws_url: str, schema_checker: SchemaChecker
) -> None:
    port = int(ws_url.rsplit(":", 1)[1])
    with trio.fail_after(TIMEOUT):
        async with SlowReader.open(port) as reader:
            await reader.call("initialize", {"clientInfo": {"name": "slow", "version": "0"}})
            thread = await reader.call("thread/start", {"approvalPolicy": "never"})
            turn = {"threadId": thread["thread"]["id"], "input": text_input(f"/stream {DELTAS} 16")}
            await reader.call("turn/start", turn)
            started = trio.current_time()
            await reader.read_turn()
            took = trio.current_time() - started
    reader.check(schema_checker)
    # Paced by the reader, across many of the kernel's pauses (each one longer than
    # STALL_SECONDS: with that rule alone this reader was dropped about 4 s in).
    assert took > 8 * STALL_SECONDS, took


async def test_several_slow_readers_of_one_thread_all_get_every_delta(
    ws_url: str, schema_checker: SchemaChecker
) -> None:
    """Slow readers together (as many clients in one busy process): while each of the
    others still has something to write, waiting for the one in a kernel pause delays
    nobody, so none is taken for stalled."""
    port = int(ws_url.rsplit(":", 1)[1])
    with trio.fail_after(TIMEOUT):
        async with (
            SlowReader.open(port) as first,
            SlowReader.open(port) as second,
            SlowReader.open(port) as third,
        ):
            readers = [first, second, third]
            for index, reader in enumerate(readers):
                await reader.call(
                    "initialize", {"clientInfo": {"name": f"r{index}", "version": "0"}}
                )
            thread = await first.call("thread/start", {"approvalPolicy": "never"})
            thread_id = thread["thread"]["id"]
            for reader in readers[1:]:
                await reader.call("thread/resume", {"threadId": thread_id})
            turn = {"threadId": thread_id, "input": text_input(f"/stream {DELTAS} 16")}
            await first.call("turn/start", turn)
            async with trio.open_nursery() as nursery:
                for reader in readers:
                    nursery.start_soon(reader.read_turn)
    for reader in readers:
        reader.check(schema_checker)


def text_input(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text, "text_elements": []}]


async def test_a_stalled_lone_subscriber_is_waited_for_until_another_joins(
    server: Server, ws_url: str, schema_checker: SchemaChecker, caplog: pytest.LogCaptureFixture
) -> None:
    """While a thread's only subscriber has stopped reading, the turn waits for it (it
    delays nobody); once a second client subscribes, the stalled one is given up within
    about STALL_SECONDS and the newcomer gets the stream."""
    with trio.fail_after(TIMEOUT):
        async with trio_websocket.open_websocket_url(ws_url) as stalled:
            for request in (
                {
                    "id": 1,
                    "method": "initialize",
                    "params": {"clientInfo": {"name": "s", "version": "1"}},
                },
                {"id": 2, "method": "thread/start", "params": {"approvalPolicy": "never"}},
            ):
                await stalled.send_message(json.dumps(request))
                answer = json.loads(await stalled.get_message())
                assert "result" in answer, answer
            thread_id = answer["result"]["thread"]["id"]
            turn = {"threadId": thread_id, "input": text_input("/stream 200000 16")}
            await stalled.send_message(
                json.dumps({"id": 3, "method": "turn/start", "params": turn})
            )
            # From here on `stalled` never reads again. Long past STALL_SECONDS (a peer
            # with company would be dropped by then) it is still served: the producer
            # waits for it, its queue over half full (where producers pace themselves).
            await trio.sleep(8 * STALL_SECONDS)  # the scenario, not synchronisation
            dropped = [r.getMessage() for r in caplog.records if "slow consumer" in r.getMessage()]
            assert not dropped, dropped
            stats = server.statistics()
            assert stats["connections"] == 1 and QUEUE // 2 < stats["queued"] <= QUEUE, stats
            assert stats["running_turns"] == 1, stats
            async with connect_websocket(ws_url) as reader:
                reader.observer = schema_checker.check
                await reader.initialize("reader")
                joined = trio.current_time()
                await reader.request("thread/resume", {"threadId": thread_id})
                deltas = 0
                async for message in reader:
                    if isinstance(message, dict) and message["method"] == "item/agentMessage/delta":
                        deltas += 1
                        if deltas == 5 * QUEUE:
                            break
                waited = trio.current_time() - joined
                # Given up within a stall window or two of the join, not LONE_STALL_SECONDS.
                assert waited < LONE_STALL_SECONDS / 2, waited
                with trio.move_on_after(30):
                    try:
                        while True:
                            await stalled.get_message()
                    except trio_websocket.ConnectionClosed as exc:
                        assert exc.reason is not None and exc.reason.code in (1008, 1006)
                assert stalled.closed is not None, "the stalled client was never dropped"
            await WebSocketTransport(stalled).aclose()
