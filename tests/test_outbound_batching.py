"""The outbound task writes what is queued for a connection in few socket writes
(connection.py): frames queued at once leave in one write, a stream produced one event
per scheduler round is coalesced, order is kept, and a lone message is not held back.

A real websocket over TCP (the server's own framing, trio-websocket as the client); the
connection's metrics hook `delivered(count)` is called once per transport write, so it
counts the writes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio
import trio_websocket

from appserver.connection import COALESCE_FRAMES, MAX_BATCH, Connection
from appserver.metrics import Metrics
from appserver.protocol.types import InitializeParams
from appserver.transports import websocket
from appserver.transports.ws_server import ServerWebSocket

TIMEOUT = 10


class WriteCounter(Metrics):
    """The real metrics hooks, recording the size of every write as well."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[int] = []

    def delivered(self, count: int) -> None:
        self.writes.append(count)
        super().delivered(count)


class NoRequests:
    """The connection's request handler; these tests only send from the server."""

    def initialize(self, conn: Connection, params: InitializeParams) -> Any:
        return {}

    def answers_now(self, method: str) -> bool:
        return False

    def handle_now(self, ctx: Any, method: str, params: Any) -> Any:
        raise AssertionError("no request is answered now")

    async def handle(self, ctx: Any, method: str, params: Any) -> Any:
        return {}

    def on_client_response(self, conn: Connection, message: Any) -> None:
        pass

    def on_disconnect(self, conn: Connection) -> None:
        pass


@asynccontextmanager
async def connected() -> AsyncIterator[tuple[Connection, WriteCounter, Any]]:
    """A server-side Connection (running) and the client websocket reading from it."""
    metrics = WriteCounter()
    ready: trio.MemorySendChannel[Connection]
    ready, got = trio.open_memory_channel[Connection](1)

    async def on_connection(transport: ServerWebSocket) -> None:
        conn = Connection(transport, NoRequests(), metrics=metrics)
        await ready.send(conn)
        await conn.run()

    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            partial(
                websocket.serve,
                "127.0.0.1",
                0,
                on_connection,
                handler_nursery=nursery,
                max_message_bytes=2**24,
            )
        )
        async with trio_websocket.open_websocket_url(f"ws://127.0.0.1:{port}") as client:
            conn = await got.receive()
            yield conn, metrics, client
            conn.close()
        nursery.cancel_scope.cancel()


async def read(client: Any, count: int) -> list[int]:
    return [json.loads(await client.get_message())["n"] for _ in range(count)]


def frame(n: int) -> str:
    return json.dumps({"jsonrpc": "2.0", "method": "x", "params": {}, "n": n})


async def test_frames_queued_at_once_leave_in_one_write() -> None:
    count = 300
    assert count < MAX_BATCH
    with trio.fail_after(TIMEOUT):
        async with connected() as (conn, metrics, client):
            for n in range(count):  # one synchronous step: all queued before any write
                assert conn.send_nowait(frame(n))
            assert await read(client, count) == list(range(count))
            assert metrics.writes == [count]


async def test_a_stream_of_one_event_per_round_is_coalesced_in_order() -> None:
    count = 2000
    with trio.fail_after(TIMEOUT):
        async with connected() as (conn, metrics, client):
            async with trio.open_nursery() as nursery:

                async def produce() -> None:
                    for n in range(count):
                        conn.send_nowait(frame(n))
                        await trio.sleep(0)  # noqa: ASYNC115 - as a producer, every event

                nursery.start_soon(produce)
                assert await read(client, count) == list(range(count))
            assert sum(metrics.writes) == count
            # Without coalescing this would be about one write per frame.
            assert len(metrics.writes) <= count // (COALESCE_FRAMES // 2)


async def test_a_lone_message_after_a_quiet_while_is_written_at_once() -> None:
    with trio.fail_after(TIMEOUT):
        async with connected() as (conn, metrics, client):
            conn.send_nowait(frame(0))
            assert await read(client, 1) == [0]
            await trio.sleep(0.05)  # the stream is over: nothing waits to coalesce
            started = trio.current_time()
            conn.send_nowait(frame(1))
            assert await read(client, 1) == [1]
            assert trio.current_time() - started < 0.05
            assert metrics.writes == [1, 1]


async def test_a_reply_is_not_held_back_to_coalesce_a_stream() -> None:
    """A response queued while a stream is being coalesced leaves with the next write:
    the frames after it in that write are only those the producer added meanwhile (a
    round or two), never the COALESCE_FRAMES a stream waits for."""
    count, every = 2000, 100
    replies = set(range(every // 2, count, every))
    with trio.fail_after(TIMEOUT):
        async with connected() as (conn, metrics, client), trio.open_nursery() as nursery:

            async def produce() -> None:
                for n in range(count):
                    if n in replies:
                        conn.reply(frame(n))
                    else:
                        conn.send_nowait(frame(n))
                    await trio.sleep(0)  # noqa: ASYNC115 - as a producer, every event

            nursery.start_soon(produce)
            assert await read(client, count) == list(range(count))
    ends, total = [], 0
    for size in metrics.writes:
        total += size
        ends.append(total)  # one past the last frame of each write
    late = [n for n in sorted(replies) if not any(n < end <= n + 4 for end in ends)]
    assert not late, f"replies held back to coalesce: {late}; writes {metrics.writes}"
    # The stream itself was still coalesced.
    assert len(metrics.writes) <= count // (COALESCE_FRAMES // 4)
