"""The reconnecting Python client (appserver/client_resume.py, PROTOCOL.md §13): through
a TCP proxy that the test cuts mid-turn, the session reconnects, resumes with afterSeq
and its event stream goes on with no gap and no duplicate, an approval answered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from event_seq_support import Proxy
from multiclient_support import stream_text

from appserver.client import ServerRequest, connect_websocket
from appserver.client_resume import Resynced, resuming_session
from appserver.server import Server, ServerConfig, open_server

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


async def test_the_session_reconnects_and_continues_exactly(server: Server) -> None:
    events: list[dict[str, Any]] = []
    answered: list[int | str] = []
    with trio.fail_after(TIMEOUT):
        async with open_proxy(server) as proxy:
            url = f"ws://127.0.0.1:{proxy.port}"
            async with resuming_session(
                lambda: connect_websocket(url), reconnect_delay=0.05
            ) as session:
                thread_id = (await session.start_thread())["thread"]["id"]
                script = f"/stream {STREAM}\n/run echo approved\n/stream {STREAM}"
                text = [{"type": "text", "text": script, "text_elements": []}]
                await session.request("turn/start", {"threadId": thread_id, "input": text})
                cuts = 0
                async for event in session:
                    assert not isinstance(event, Resynced), event
                    if isinstance(event, ServerRequest):
                        proxy.cut()  # the answer may be lost: the session sends it again
                        cuts += 1
                        await session.respond(event.id, {"decision": "accept"})
                        answered.append(event.id)
                        continue
                    if "seq" not in event:
                        continue  # broadcasts
                    events.append(event)
                    deltas = sum(e["method"] == "item/agentMessage/delta" for e in events)
                    if deltas in (50, STREAM + 50):
                        proxy.cut()
                        cuts += 1
                    if event["method"] == "turn/completed":
                        break
                reconnects = session.reconnects
    assert cuts == 3 and reconnects >= 3 and proxy.accepted >= 4
    assert len(answered) == 1
    seqs = [e["seq"] for e in events]
    # One seq per event, contiguous: the request's seq is the one gap.
    assert len(set(seqs)) == len(seqs)
    assert seqs[-1] - seqs[0] + 1 == len(seqs) + 1
    deltas = [e["params"]["delta"] for e in events if e["method"] == "item/agentMessage/delta"]
    assert "".join(deltas) == stream_text(STREAM) * 2
    command = [e for e in events if e["method"] == "item/completed"][-2]["params"]["item"]
    assert command["type"] == "commandExecution" and command["status"] == "completed"
    assert events[-1]["params"]["turn"]["status"] == "completed"


async def test_the_session_says_resynced_when_the_log_does_not_reach_back() -> None:
    config = ServerConfig(data_dir=None, shutdown_timeout=0.5, event_log_events=3)
    resynced: list[Resynced] = []
    with trio.fail_after(TIMEOUT):
        async with open_server(config) as server, open_proxy(server) as proxy:
            url = f"ws://127.0.0.1:{proxy.port}"
            async with resuming_session(
                lambda: connect_websocket(url), reconnect_delay=0.05
            ) as session:
                thread_id = (await session.start_thread())["thread"]["id"]
                script = [{"type": "text", "text": "/stream 50\n/sleep 0.5", "text_elements": []}]
                await session.request("turn/start", {"threadId": thread_id, "input": script})
                deltas = 0
                async for event in session:
                    if isinstance(event, Resynced):
                        resynced.append(event)
                        break
                    if isinstance(event, dict) and event.get("method") == "item/agentMessage/delta":
                        deltas += 1
                        if deltas == 10:
                            proxy.cut()
                # The snapshot shows the turn as it stands; the live stream goes on.
                done = resynced[0].result["thread"]["turns"][-1]["status"] == "completed"
                async for event in session:
                    if done:
                        break
                    if isinstance(event, dict) and event.get("method") == "turn/completed":
                        break
    assert [r.thread_id for r in resynced] == [thread_id]
    assert resynced[0].result["replay"] is None
    assert resynced[0].result["thread"]["turns"]
