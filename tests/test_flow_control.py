"""Outbound flow control and inbound limits (PROTOCOL.md §2.3, §2.4).

A websocket client that stops reading is dropped; one that reads never is, and never
loses a message; stdio applies backpressure instead of dropping; `--max-inflight` refuses
requests but never responses or notifications.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing
import trio_websocket
from multiclient_support import (
    Message,
    Recorder,
    encode,
    open_peer,
    open_peers,
    params_of,
    start_thread,
    start_turn,
    stream_text,
    text_input,
)

from appserver.client import Client
from appserver.connection import STALL_SECONDS
from appserver.jsonrpc import Outbound
from appserver.server import ServerConfig, open_server
from appserver.transports.lines import LineTransport
from appserver.transports.websocket import WebSocketTransport

from support import SchemaChecker, appserver_argv

TIMEOUT = 30
QUEUE = 64  # --outbound-queue of this module's server: a stalled peer overflows it fast
STREAM = 10000  # deltas; far more than kernel socket buffers plus QUEUE messages hold


@pytest.fixture
def server_config() -> ServerConfig:
    return ServerConfig(data_dir=None, outbound_queue=QUEUE, shutdown_timeout=0.5)


@attrs.define
class StalledPeer:
    """A raw websocket client whose reading the test controls: trio-websocket buffers one
    message, so once the test stops calling get_message the socket stops draining."""

    ws: trio_websocket.WebSocketConnection
    checker: SchemaChecker
    received: list[Message] = attrs.Factory(list)
    close_code: int | None = None
    close_reason: str | None = None

    async def send(self, message: Message) -> None:
        await self.ws.send_message(encode(message))

    async def receive(self) -> Message:
        message: Message = json.loads(await self.ws.get_message())
        self.checker.check(message, None)
        self.received.append(message)
        return message

    async def read_to_the_end(self) -> None:
        try:
            while True:
                await self.receive()
        except trio_websocket.ConnectionClosed as exc:
            if exc.reason is not None:
                self.close_code, self.close_reason = exc.reason.code, exc.reason.reason

    def deltas(self) -> list[str]:
        return [
            params_of(m)["delta"]
            for m in self.received
            if m.get("method") == "item/agentMessage/delta"
        ]


@asynccontextmanager
async def stalled_subscriber(
    url: str, checker: SchemaChecker, thread_id: str
) -> AsyncIterator[StalledPeer]:
    async with trio_websocket.open_websocket_url(url) as ws:
        peer = StalledPeer(ws, checker)
        info = {"name": "stalled", "version": "0"}
        await peer.send({"id": 1, "method": "initialize", "params": {"clientInfo": info}})
        await peer.send({"id": 2, "method": "thread/resume", "params": {"threadId": thread_id}})
        while (answer := await peer.receive()).get("id") != 2:
            pass
        assert answer["result"]["thread"]["id"] == thread_id, answer
        try:
            yield peer
        finally:
            # trio-websocket 0.12 leaves the TCP stream of a connection the peer already
            # closed open; the server's transport closes it explicitly, so reuse it.
            with trio.CancelScope(shield=True):
                await WebSocketTransport(ws).aclose()


@attrs.define
class StreamStats:
    deltas: list[str] = attrs.Factory(list)
    max_gap: float = 0.0
    turn: dict[str, Any] = attrs.Factory(dict)


async def collect_stream(
    client: Client,
    thread_id: str,
    turn_id: str,
    *,
    at_count: int | None = None,
    then: trio.Event | None = None,
) -> StreamStats:
    """Every delta of the turn in arrival order, the longest pause between two of them,
    and the final turn. Sets `then` once `at_count` deltas have arrived."""
    stats = StreamStats()
    last = time.monotonic()
    while True:
        message = await client.next_notification()
        params = params_of(message)
        if message.get("method") == "item/agentMessage/delta" and params["turnId"] == turn_id:
            now = time.monotonic()
            stats.max_gap = max(stats.max_gap, now - last)
            last = now
            stats.deltas.append(params["delta"])
            if then is not None and len(stats.deltas) == at_count:
                then.set()
        elif message.get("method") == "turn/completed" and params["turn"]["id"] == turn_id:
            stats.turn = params["turn"]
            return stats


async def run_with_stalled_peer(
    url: str, checker: SchemaChecker, *, resume_reading_at: int | None
) -> tuple[StreamStats, StalledPeer]:
    """A reading client streams a /stream turn while a second subscriber stops reading.
    The stalled one reads again once the reader has `resume_reading_at` deltas (or, when
    None, after the turn)."""
    async with open_peer(url, checker, "reader") as reader:
        thread_id = await start_thread(reader.client, approvalPolicy="never")
        async with stalled_subscriber(url, checker, thread_id) as stalled:
            turn_id = await start_turn(reader.client, thread_id, f"/stream {STREAM} 8")
            resume = trio.Event()
            async with trio.open_nursery() as nursery:

                async def read_later() -> None:
                    await resume.wait()
                    await stalled.read_to_the_end()

                nursery.start_soon(read_later)
                stats = await collect_stream(
                    reader.client, thread_id, turn_id, at_count=resume_reading_at, then=resume
                )
                resume.set()
            assert not reader.client.closed
    return stats, stalled


def check_complete(stats: StreamStats) -> None:
    assert len(stats.deltas) == STREAM
    assert "".join(stats.deltas) == stream_text(STREAM)
    assert stats.turn["status"] == "completed"


def check_dropped(stalled: StalledPeer) -> None:
    """Dropped before the end of the turn; what it got before is an in-order prefix."""
    got = stalled.deltas()
    assert len(got) < STREAM
    assert "".join(got) == stream_text(STREAM)[: 8 * len(got)]
    assert not [m for m in stalled.received if m.get("method") == "turn/completed"]


async def test_stalled_websocket_client_is_dropped_and_a_reading_one_gets_everything(
    ws_url: str, schema_checker: SchemaChecker
) -> None:
    with trio.fail_after(TIMEOUT):
        stats, stalled = await run_with_stalled_peer(ws_url, schema_checker, resume_reading_at=None)
    check_complete(stats)
    check_dropped(stalled)


async def test_stalled_websocket_client_is_closed_with_1008_slow_consumer(
    ws_url: str, schema_checker: SchemaChecker
) -> None:
    with trio.fail_after(TIMEOUT):
        # The stalled peer drains its socket again soon after it was dropped, so the close
        # frame, queued after what its socket already held, can reach it.
        stats, stalled = await run_with_stalled_peer(ws_url, schema_checker, resume_reading_at=5000)
    check_complete(stats)
    check_dropped(stalled)
    assert (stalled.close_code, stalled.close_reason) == (1008, "slow consumer")


async def test_a_stalled_client_does_not_delay_the_others(
    ws_url: str, schema_checker: SchemaChecker
) -> None:
    """§2.3: "Delivery to every other connection goes on without delay." Between two deltas
    a reader normally waits microseconds. Producers pace themselves to websocket peers
    whose sockets drain (so a reader is never dropped) and stop once a write has been
    stuck for STALL_SECONDS (0.5 s): that one detection pause is the most a stalled peer
    may cost the others; waiting on it any longer fails this test."""
    with trio.fail_after(TIMEOUT):
        stats, stalled = await run_with_stalled_peer(ws_url, schema_checker, resume_reading_at=None)
    check_complete(stats)
    check_dropped(stalled)
    assert stats.max_gap < STALL_SECONDS + 0.4


async def test_clients_that_keep_reading_are_never_slow_consumers(
    ws_url: str, schema_checker: SchemaChecker
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_peers(ws_url, schema_checker, "a", "b", "c") as peers:
            thread_id = await start_thread(peers[0].client, approvalPolicy="never")
            for peer in peers[1:]:
                await peer.client.request("thread/resume", {"threadId": thread_id})
            turn_id = await start_turn(peers[0].client, thread_id, f"/stream {STREAM} 8")
            results: list[StreamStats] = []

            async def collect(client: Client) -> None:
                results.append(await collect_stream(client, thread_id, turn_id))

            async with trio.open_nursery() as nursery:
                for peer in peers:
                    nursery.start_soon(collect, peer.client)
            for peer in peers:
                await peer.client.request("thread/loaded/list")  # still connected
    assert len(results) == 3
    for stats in results:
        check_complete(stats)


# --- stdio: backpressure, nothing lost ----------------------------------------------------


class SlowReceiveStream(trio.abc.ReceiveStream):
    """Reads at most `chunk` bytes at a time with a pause before each read, and stops
    reading for `stall` seconds once `stall_after` bytes have been read: a client that
    reads slowly. (The pauses shape the load; no result depends on their length.)"""

    def __init__(
        self,
        inner: trio.abc.ReceiveStream,
        *,
        chunk: int = 2048,
        pause: float = 0.001,
        stall_after: int = 16384,
        stall: float = 0.3,
    ) -> None:
        self._inner = inner
        self._chunk = chunk
        self._pause = pause
        self._stall_after = stall_after
        self._stall = stall
        self._read = 0
        self._stalled = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if not self._stalled and self._read >= self._stall_after:
            self._stalled = True
            await trio.sleep(self._stall)
        await trio.sleep(self._pause)
        data = await self._inner.receive_some(self._chunk)
        self._read += len(data)
        return bytes(data)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_slow_stdio_client_loses_nothing(schema_checker: SchemaChecker) -> None:
    count = 20000
    argv = appserver_argv("--in-memory", "--outbound-queue", str(QUEUE), "--log-level", "warning")
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            proc: trio.Process = await nursery.start(
                partial(
                    trio.run_process,
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    check=False,
                )
            )
            assert proc.stdin is not None and proc.stdout is not None
            transport = LineTransport(SlowReceiveStream(proc.stdout), proc.stdin, 2**28)
            async with Client.open(transport) as client:
                log = Recorder(client, schema_checker)
                await client.initialize("slow-reader")
                thread_id = await start_thread(client, approvalPolicy="never")
                turn_id = await start_turn(client, thread_id, f"/stream {count} 8")
                stats = await collect_stream(client, thread_id, turn_id)
                await proc.stdin.aclose()  # EOF: the server exits
                await client.wait_closed()
            assert await proc.wait() == 0
    assert len(stats.deltas) == count
    assert "".join(stats.deltas) == stream_text(count)
    assert stats.turn["status"] == "completed"
    events = [m["method"] for m in log.notifications(thread_id)]
    assert events.index("turn/started") < events.index("item/agentMessage/delta")
    assert events.count("item/completed") == 2  # the user message and the agent message


# --- inbound: --max-inflight (§2.4) ---------------------------------------------------------


async def test_requests_beyond_max_inflight_are_refused_but_never_answers_or_notifications(
    schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    """A stdio connection (in process, over trio's lockstep streams) whose client stops
    reading: the server's answers wait for it (backpressure), so the requests stay in
    flight for as long as the test wants, with no timing involved."""
    config = ServerConfig(data_dir=None, max_inflight=4, outbound_queue=1, shutdown_timeout=0.5)
    methods: dict[Any, str] = {}
    received: list[Message] = []
    with trio.fail_after(TIMEOUT):
        async with open_server(config) as server, trio.open_nursery() as nursery:
            to_server, server_in = trio.testing.memory_stream_one_way_pair()
            server_out, from_server = trio.testing.lockstep_stream_one_way_pair()
            nursery.start_soon(server.serve_stdio, server_in, server_out)
            peer = LineTransport(from_server, to_server, 2**28)

            async def send(message: Message) -> None:
                if "method" in message and "id" in message:
                    methods[message["id"]] = message["method"]
                await peer.send_all([Outbound(encode(message))])

            async def receive_until(done: Any) -> None:
                while True:
                    message: Message = json.loads(await peer.receive())
                    schema_checker.check(message, methods.get(message.get("id")))
                    received.append(message)
                    if done(message):
                        return

            def answer_to(request_id: Any) -> Any:
                return lambda m: "method" not in m and m.get("id") == request_id

            info = {"name": "busy", "version": "0"}
            await send({"id": 1, "method": "initialize", "params": {"clientInfo": info}})
            await receive_until(answer_to(1))
            assert "result" in received[-1], received[-1]
            await send({"id": 2, "method": "thread/start", "params": {"cwd": str(tmp_path)}})
            await receive_until(answer_to(2))
            thread_id = received[-1]["result"]["thread"]["id"]
            await send(
                {
                    "id": 3,
                    "method": "turn/start",
                    "params": {"threadId": thread_id, "input": text_input("/run echo hi")},
                }
            )
            await receive_until(lambda m: m.get("method", "").endswith("/requestApproval"))
            approval_id = received[-1]["id"]
            await receive_until(
                lambda m: (
                    m.get("method") == "thread/status/changed"
                    and m["params"]["status"].get("activeFlags") == ["waitingOnApproval"]
                )
            )

            # Stop reading. Three answers fill the pipe and the outbound queue ...
            for request_id in ("fill-1", "fill-2", "fill-3"):
                await send({"id": request_id, "method": "thread/loaded/list"})
            await trio.testing.wait_all_tasks_blocked()
            assert server.statistics()["inflight"] == 0
            # ... so these four wait to be answered: the connection is at --max-inflight.
            for request_id in ("read-1", "read-2", "read-3", "read-4"):
                await send(
                    {"id": request_id, "method": "thread/read", "params": {"threadId": thread_id}}
                )
            await trio.testing.wait_all_tasks_blocked()
            assert server.statistics()["inflight"] == 4
            # One more is refused and not executed; an answer and a notification are not.
            await send(
                {
                    "id": "extra",
                    "method": "thread/name/set",
                    "params": {"threadId": thread_id, "name": "must not be applied"},
                }
            )
            # So is one that the server answers from live state without a task (§2.4).
            await send({"id": "listed", "method": "thread/loaded/list"})
            await send({"method": "initialized"})
            await send({"id": approval_id, "result": {"decision": "accept"}})
            await trio.testing.wait_all_tasks_blocked()
            stats = server.statistics()
            assert (stats["inflight"], stats["pending_requests"]) == (4, 0)

            await receive_until(lambda m: m.get("method") == "turn/completed")
            await send({"id": "check", "method": "thread/read", "params": {"threadId": thread_id}})
            await receive_until(answer_to("check"))
            assert server.statistics()["inflight"] == 0
            await to_server.aclose()

    answers = {m["id"]: m for m in received if "method" not in m}
    errors = {k: m["error"] for k, m in answers.items() if "error" in m}
    assert list(errors) == ["extra", "listed"]
    assert errors["listed"] == errors["extra"]
    assert errors["extra"]["code"] == -32001
    assert errors["extra"]["message"] == "Server overloaded; retry later."
    assert errors["extra"]["data"]["kind"] == "overloaded"
    order = [m.get("id") for m in received if "method" not in m]
    assert order.index("extra") < min(order.index(f"read-{i}") for i in range(1, 5))
    assert answers["check"]["result"]["thread"]["name"] is None
    item = next(
        m["params"]["item"]
        for m in received
        if m.get("method") == "item/completed" and m["params"]["item"]["type"] == "commandExecution"
    )
    assert (item["status"], item["aggregatedOutput"]) == ("completed", "hi\n")
    turn = next(m["params"]["turn"] for m in received if m.get("method") == "turn/completed")
    assert turn["status"] == "completed"
