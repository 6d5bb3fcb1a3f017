"""The reconnecting Python client (appserver/client_resume.py, PROTOCOL.md §13): through
a TCP proxy that the test cuts mid-turn, the session reconnects, resumes with afterSeq
and its event stream goes on with no gap and no duplicate, an approval answered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio
from event_seq_support import Proxy, init_seq
from multiclient_support import stream_text

from appserver.client import Client, ServerRequest, connect_websocket
from appserver.client_resume import Resynced, resuming_session
from appserver.server import Server, ServerConfig, open_server
from appserver.transports.memory import MemoryTransport, memory_transport_pair

TIMEOUT = 30
STREAM = 400


@asynccontextmanager
async def open_proxy(server: Server) -> AsyncIterator[Proxy]:
    async with trio.open_nursery() as nursery:
        target = await nursery.start(server.serve_websocket, "127.0.0.1", 0)
        proxy = Proxy(target)
        await nursery.start(proxy.serve)
        yield proxy
        nursery.cancel_scope.cancel()


@pytest.fixture
def server_config() -> ServerConfig:
    return ServerConfig(data_dir=None, shutdown_timeout=0.5)


@attrs.define
class Marks:
    """Finds `marker` in the bytes the proxy forwards, across chunk boundaries."""

    marker: bytes
    seen: int = 0
    _tail: bytes = b""

    def feed(self, chunk: bytes) -> list[int]:
        """Where in `chunk` each new occurrence starts (0 for one begun in the last)."""
        data = self._tail + chunk
        found: list[int] = []
        at = data.find(self.marker)
        while at >= 0:
            found.append(max(0, at - len(self._tail)))
            at = data.find(self.marker, at + 1)
        self.seen += len(found)
        self._tail = data[-(len(self.marker) - 1) :]
        return found

    def nth(self, found: list[int], n: int) -> int | None:
        """Where the n-th occurrence overall starts, if it is in the chunk just fed."""
        index = len(found) - (self.seen - n) - 1
        return found[index] if 0 <= index < len(found) else None


async def test_the_session_reconnects_and_continues_exactly(server: Server) -> None:
    """Three cuts, each made by the proxy in the server's bytes (so each hits the live
    connection, wherever the client's buffers are; the bytes before the cut reach the
    client): at the 50th delta, at the approval request, and 50 deltas after the answer."""
    events: list[dict[str, Any]] = []
    answered: list[int | str] = []
    deltas = Marks(b'"item/agentMessage/delta"')
    request = Marks(b'"item/commandExecution/requestApproval"')
    cuts: list[str] = []
    deltas_at_answer: list[int] = []

    def watch(chunk: bytes) -> int | None:
        found, requests = deltas.feed(chunk), request.feed(chunk)
        at = None
        if not cuts:
            at = deltas.nth(found, 50)
            name = "deltas"
        elif len(cuts) == 1 and requests:
            at, name = requests[0], "request"
        elif len(cuts) == 2 and deltas_at_answer:
            at = deltas.nth(found, deltas_at_answer[0] + 50)
            name = "after the answer"
        if at is not None:
            cuts.append(name)
        return at

    with trio.fail_after(TIMEOUT):
        async with open_proxy(server) as proxy:
            proxy.watch = watch
            url = f"ws://127.0.0.1:{proxy.port}"
            async with resuming_session(
                lambda: connect_websocket(url), reconnect_delay=0.05
            ) as session:
                thread_id = (await session.start_thread())["thread"]["id"]
                script = f"/stream {STREAM}\n/run echo approved\n/stream {STREAM}"
                text = [{"type": "text", "text": script, "text_elements": []}]
                await session.request("turn/start", {"threadId": thread_id, "input": text})
                async for event in session:
                    assert not isinstance(event, Resynced), event
                    if isinstance(event, ServerRequest):
                        deltas_at_answer.append(deltas.seen)
                        await session.respond(event.id, {"decision": "accept"})
                        answered.append(event.id)
                        continue
                    if "seq" not in event:
                        continue  # broadcasts
                    events.append(event)
                    if event["method"] == "turn/completed":
                        break
                reconnects = session.reconnects
    assert cuts == ["deltas", "request", "after the answer"]
    assert reconnects >= 3 and proxy.accepted >= 4
    assert len(answered) == 1
    seqs = [e["seq"] for e in events]
    # One seq per event, contiguous: the request's seq is the one gap.
    assert len(set(seqs)) == len(seqs)
    assert seqs[-1] - seqs[0] + 1 == len(seqs) + 1
    texts = [e["params"]["delta"] for e in events if e["method"] == "item/agentMessage/delta"]
    assert "".join(texts) == stream_text(STREAM) * 2
    command = [e for e in events if e["method"] == "item/completed"][-2]["params"]["item"]
    assert command["type"] == "commandExecution" and command["status"] == "completed"
    assert events[-1]["params"]["turn"]["status"] == "completed"


async def test_the_session_says_resynced_when_the_log_does_not_reach_back() -> None:
    """The log keeps 3 events; the proxy cuts the session at the approval request and
    holds it off while a second client, connected directly, answers it, so the rest of
    the turn is published while the session is away: its resume cannot replay."""
    config = ServerConfig(data_dir=None, shutdown_timeout=0.5, event_log_events=3)
    resynced: list[Resynced] = []
    request = Marks(b'"item/commandExecution/requestApproval"')
    cut = trio.Event()

    def watch(chunk: bytes) -> int | None:
        found = request.feed(chunk)
        if cut.is_set() or not found:
            return None
        cut.set()
        return found[0]

    with trio.fail_after(TIMEOUT):
        async with open_server(config) as server, open_proxy(server) as proxy:
            proxy.watch = watch
            url = f"ws://127.0.0.1:{proxy.port}"
            async with resuming_session(
                lambda: connect_websocket(url), reconnect_delay=0.05
            ) as session:
                thread_id = (await session.start_thread())["thread"]["id"]
                proxy.held = trio.Event()  # the next connection waits
                async with server.connect() as observer:
                    await init_seq(observer)
                    await observer.request("thread/resume", {"threadId": thread_id})
                    script = "/stream 50\n/run echo x\n/stream 50"
                    text = [{"type": "text", "text": script, "text_elements": []}]
                    await session.request("turn/start", {"threadId": thread_id, "input": text})
                    await cut.wait()
                    async for message in observer:
                        if isinstance(message, ServerRequest):
                            await observer.respond(message.id, {"decision": "accept"})
                        elif message.get("method") == "turn/completed":
                            break
                proxy.held.set()
                async for event in session:
                    if isinstance(event, Resynced):
                        resynced.append(event)
                        break
    assert [r.thread_id for r in resynced] == [thread_id]
    assert resynced[0].result["replay"] is None
    # The snapshot shows the turn as it stands: completed, both streams in it.
    turn = resynced[0].result["thread"]["turns"][-1]
    assert turn["status"] == "completed"


async def test_an_answer_sent_as_the_connection_breaks_is_sent_again(server: Server) -> None:
    """The connection breaks after `respond` found it open but before the answer went
    out: `respond` returns (it does not raise ConnectionClosedError), and the session
    sends the answer again on the next connection, so the command runs."""
    client_sides: list[MemoryTransport] = []
    events: list[dict[str, Any]] = []
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:

            @asynccontextmanager
            async def connect() -> AsyncIterator[Client]:
                server_side, client_side = memory_transport_pair()
                nursery.start_soon(server.run_connection, server_side)
                client_sides.append(client_side)
                async with Client.open(client_side) as client:
                    yield client

            async with resuming_session(connect, reconnect_delay=0.01) as session:
                thread_id = (await session.start_thread())["thread"]["id"]
                script = "/run echo approved\n/stream 3"
                text = [{"type": "text", "text": script, "text_elements": []}]
                await session.request("turn/start", {"threadId": thread_id, "input": text})
                async for event in session:
                    if isinstance(event, ServerRequest):
                        # Break the client's sending side with no checkpoint in between:
                        # the client has not seen the end yet, the send itself fails.
                        client_sides[-1]._send.close()
                        await session.respond(event.id, {"decision": "accept"})
                        continue
                    assert not isinstance(event, Resynced), event
                    if "seq" in event:
                        events.append(event)
                        if event["method"] == "turn/completed":
                            break
            nursery.cancel_scope.cancel()
    assert len(client_sides) >= 2
    completed = [e["params"]["item"] for e in events if e["method"] == "item/completed"]
    commands = [item for item in completed if item["type"] == "commandExecution"]
    assert [c["status"] for c in commands] == ["completed"]
    assert events[-1]["params"]["turn"]["status"] == "completed"
