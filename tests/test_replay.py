"""thread/resume afterSeq (PROTOCOL.md §13) over a real websocket: a client that
disconnects mid-turn, or is dropped as a slow consumer, continues exactly where it
stopped (no gap, no duplicate), pending approvals replayed with their original id."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio_websocket
from event_seq_support import (
    collect_until_completed,
    init_seq,
    seqs,
    start_turn,
    text,
    thread_events,
)
from multiclient_support import stream_text

from appserver.client import Client, ServerRequest, connect_websocket
from appserver.server import ServerConfig
from appserver.transports.websocket import WebSocketTransport

TIMEOUT = 30
QUEUE = 64
STREAM = 10000  # far more than kernel socket buffers plus QUEUE messages hold


@pytest.fixture
def server_config() -> ServerConfig:
    return ServerConfig(data_dir=None, shutdown_timeout=0.5, outbound_queue=QUEUE)


async def read_events(client: Client, count: int) -> list[dict[str, Any]]:
    got = []
    for _ in range(count):
        message = await client.__anext__()
        assert not isinstance(message, ServerRequest)
        got.append(message)
    return got


def record_numbered(client: Client) -> list[dict[str, Any]]:
    """Every numbered message the client receives, requests included, in order (the
    schema check stays chained)."""
    numbered: list[dict[str, Any]] = []
    chained = client.observer

    def observe(message: dict[str, Any], method: str | None) -> None:
        if "seq" in message:
            numbered.append(message)
        if chained is not None:
            chained(message, method)

    client.observer = observe
    return numbered


async def test_mid_turn_disconnect_then_replay_with_the_pending_approval(ws_url: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect_websocket(ws_url) as watcher:
            stayed = record_numbered(watcher)
            await init_seq(watcher)
            thread_id = (await watcher.request("thread/start"))["thread"]["id"]
            async with connect_websocket(ws_url) as a:
                seen = record_numbered(a)
                await init_seq(a)
                await a.request("thread/resume", {"threadId": thread_id})
                turn_id = await start_turn(a, thread_id, "/stream 30\n/run echo replayed")
                await read_events(a, 12)
            # `a` is gone mid-turn; the turn reaches its approval meanwhile.
            request = await watcher.next_server_request("item/commandExecution/requestApproval")
            last = seen[-1]["seq"]
            async with connect_websocket(ws_url) as b:
                replayed = record_numbered(b)
                await init_seq(b)
                result = await b.request("thread/resume", {"threadId": thread_id, "afterSeq": last})
                assert result["replay"]["fromSeq"] == last + 1
                to_seq = result["replay"]["toSeq"]
                requests = []
                async for message in b:
                    if isinstance(message, ServerRequest):
                        requests.append(message)
                        await b.respond(message.id, {"decision": "accept"})
                    elif message.get("method") == "turn/completed":
                        break
            await collect_until_completed(watcher, turn_id)
    # The original request, with its id, answerable from the rejoined connection.
    assert [(r.id, r.params) for r in requests] == [(request.id, request.params)]
    assert replayed[-1]["method"] == "turn/completed"
    assert replayed[-1]["params"]["turn"]["status"] == "completed"
    # No gap, no duplicate: `a` then `b` saw exactly what the connection that stayed saw.
    assert seqs(replayed) == list(range(last + 1, last + 1 + len(replayed)))
    assert replayed[-1]["seq"] >= to_seq
    assert seen + replayed == stayed


async def send(ws: trio_websocket.WebSocketConnection, message: dict[str, Any]) -> None:
    await ws.send_message(json.dumps({"jsonrpc": "2.0", **message}))


async def stalled_peer_until_dropped(
    ws_url: str, owner: Client, thread_id: str
) -> list[dict[str, Any]]:
    """A raw websocket that opts in, resumes and starts a long stream, then reads nothing
    until the owner has the whole turn: the server drops it as a slow consumer. Returns
    what it had received before the drop."""
    got: list[dict[str, Any]] = []
    async with trio_websocket.open_websocket_url(ws_url) as ws:
        caps = {"appserverEventSeq": True}
        info = {"name": "stalled", "version": "1"}
        await send(
            ws,
            {"id": 1, "method": "initialize", "params": {"clientInfo": info, "capabilities": caps}},
        )
        await send(ws, {"method": "initialized"})
        await send(ws, {"id": 2, "method": "thread/resume", "params": {"threadId": thread_id}})
        while json.loads(await ws.get_message()).get("id") != 2:
            pass
        start = {"threadId": thread_id, "input": text(f"/stream {STREAM}")}
        await send(ws, {"id": 3, "method": "turn/start", "params": start})
        started = await owner.next_notification("turn/started")
        # Taken in order as they come: a `next_notification("turn/completed", where=...)`
        # rescans the whole buffer on every arrival (quadratic in STREAM).
        await collect_until_completed(owner, started["params"]["turn"]["id"])
        try:
            while True:
                got.append(json.loads(await ws.get_message()))
        except trio_websocket.ConnectionClosed as exc:
            # 1008 slow consumer, or 1006 when the close frame could not get through
            assert exc.reason is not None and exc.reason.code in (1006, 1008)
        finally:
            # trio-websocket leaves the TCP stream of a closed connection open (as
            # tests/test_flow_control.py does, close it through the server's transport).
            with trio.CancelScope(shield=True):
                await WebSocketTransport(ws).aclose()
    return got


async def test_slow_consumer_dropped_then_continues_exactly(ws_url: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect_websocket(ws_url) as owner:
            await init_seq(owner)
            thread_id = (await owner.request("thread/start"))["thread"]["id"]
            before = await stalled_peer_until_dropped(ws_url, owner, thread_id)
            prefix = thread_events(before, thread_id)
            assert prefix and seqs(prefix) == list(range(1, len(prefix) + 1))
            turn_id = prefix[0]["params"]["turn"]["id"]
            async with connect_websocket(ws_url) as again:
                await init_seq(again)
                last = prefix[-1]["seq"]
                result = await again.request(
                    "thread/resume", {"threadId": thread_id, "afterSeq": last}
                )
                assert result["replay"]["fromSeq"] == last + 1
                rest = thread_events(await collect_until_completed(again, turn_id), thread_id)
    whole = prefix + rest
    assert len(prefix) < STREAM  # it was dropped mid-stream
    assert seqs(whole) == list(range(1, len(whole) + 1))
    deltas = [m["params"]["delta"] for m in whole if m["method"] == "item/agentMessage/delta"]
    assert "".join(deltas) == stream_text(STREAM)
    assert whole[-1]["params"]["turn"]["status"] == "completed"


async def test_replay_while_the_turn_streams_joins_the_live_stream_exactly(ws_url: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect_websocket(ws_url) as owner:
            await init_seq(owner)
            thread_id = (await owner.request("thread/start"))["thread"]["id"]
            async with connect_websocket(ws_url) as a:
                seen = record_numbered(a)
                await init_seq(a)
                await a.request("thread/resume", {"threadId": thread_id})
                turn_id = await start_turn(a, thread_id, f"/stream {STREAM}")
                await read_events(a, 100)
            last = seen[-1]["seq"]
            async with connect_websocket(ws_url) as b:
                await init_seq(b)
                # The turn is still streaming while the replay is written.
                result = await b.request("thread/resume", {"threadId": thread_id, "afterSeq": last})
                assert result["replay"]["fromSeq"] == last + 1
                assert result["thread"]["status"]["type"] == "active"
                rest = thread_events(await collect_until_completed(b, turn_id), thread_id)
    whole = thread_events(seen, thread_id) + rest
    assert seqs(whole) == list(range(1, len(whole) + 1))
    deltas = [m["params"]["delta"] for m in whole if m["method"] == "item/agentMessage/delta"]
    assert "".join(deltas) == stream_text(STREAM)
