"""§2.3 at the sizes the issue names, against a real server process with default settings:
a client that stops reading during `/stream 200000` is dropped while another receives
every delta in order; the same stream over stdio loses nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio_websocket

from appserver.client import Client, connect_websocket, spawn_stdio
from appserver.transports.websocket import WebSocketTransport

from support import SchemaChecker, run_ws_server

TIMEOUT = 120
COUNT = 200_000
SIZE = 8
SAMPLE = 50  # fully schema-validate the first messages of each method


def sampling(checker: SchemaChecker) -> Any:
    seen: dict[str, int] = {}

    def observe(message: dict[str, Any], method: str | None) -> None:
        key = str(message.get("method", method))
        seen[key] = seen.get(key, 0) + 1
        if seen[key] <= SAMPLE or key != "item/agentMessage/delta":
            checker.check(message, method)

    return observe


async def collect_stream(client: Client, turn_id: str) -> tuple[int, str, str]:
    """(delta count, concatenated deltas, final text) of one turn's agent message."""
    parts: list[str] = []
    final = ""
    while True:
        msg = await client.next_notification()
        method, params = msg.get("method"), msg.get("params", {})
        if method == "item/agentMessage/delta":
            parts.append(params["delta"])
        elif method == "item/completed" and params["item"]["type"] == "agentMessage":
            final = params["item"]["text"]
        elif method == "turn/completed" and params["turn"]["id"] == turn_id:
            assert params["turn"]["status"] == "completed"
            return len(parts), "".join(parts), final


async def test_stalled_client_dropped_reader_gets_all_200000(schema_checker: SchemaChecker) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            run_ws_server("--in-memory", "--log-level", "warning") as server,
            connect_websocket(server.url) as reader,
            trio_websocket.open_websocket_url(server.url) as stalled,
        ):
            reader.observer = sampling(schema_checker)
            await reader.initialize("reader")
            started = await reader.request("thread/start", {"approvalPolicy": "never"})
            thread_id = started["thread"]["id"]
            await stalled.send_message(
                json.dumps(
                    {
                        "id": 1,
                        "method": "initialize",
                        "params": {"clientInfo": {"name": "s", "version": "1"}},
                    }
                )
            )
            assert "result" in json.loads(await stalled.get_message())
            await stalled.send_message(
                json.dumps({"id": 2, "method": "thread/resume", "params": {"threadId": thread_id}})
            )
            assert "result" in json.loads(await stalled.get_message())
            # From here on `stalled` never reads again.
            turn = await reader.request(
                "turn/start",
                {
                    "threadId": thread_id,
                    "input": [{"type": "text", "text": f"/stream {COUNT} {SIZE}"}],
                },
            )
            count, text, final = await collect_stream(reader, turn["turn"]["id"])
            assert count == COUNT and text == final and len(final) == COUNT * SIZE
            with trio.move_on_after(30):
                try:
                    while True:
                        await stalled.get_message()
                except trio_websocket.ConnectionClosed as exc:
                    assert exc.reason is not None and exc.reason.code in (1008, 1006)
            assert stalled.closed is not None, "the stalled client was never dropped"
            assert any("slow consumer" in line for line in server.stderr_lines)
            # trio-websocket 0.12 leaves a client's TCP stream open after the server closed
            # it; our transport's aclose closes it.
            await WebSocketTransport(stalled).aclose()


async def test_stdio_stream_of_200000_loses_nothing(schema_checker: SchemaChecker) -> None:
    with trio.fail_after(TIMEOUT):
        async with spawn_stdio(["--in-memory", "--log-level", "warning"]) as client:
            client.observer = sampling(schema_checker)
            await client.initialize("stdio")
            started = await client.request("thread/start", {"approvalPolicy": "never"})
            turn = await client.request(
                "turn/start",
                {
                    "threadId": started["thread"]["id"],
                    "input": [{"type": "text", "text": f"/stream {COUNT} {SIZE}"}],
                },
            )
            count, text, final = await collect_stream(client, turn["turn"]["id"])
            assert count == COUNT and text == final and len(final) == COUNT * SIZE


@pytest.mark.slow
async def test_ten_reading_clients_all_get_every_delta(schema_checker: SchemaChecker) -> None:
    """§2.3: ten clients that read normally all receive every delta of /stream 200000."""
    async with (
        run_ws_server("--in-memory", "--log-level", "warning") as server,
        connect_websocket(server.url) as owner,
    ):
        await owner.initialize("owner")
        started = await owner.request("thread/start", {"approvalPolicy": "never"})
        thread_id = started["thread"]["id"]
        results: list[tuple[int, str, str]] = []

        async def watch(index: int, ready: trio.Event, turn_started: trio.Event) -> None:
            async with connect_websocket(server.url) as client:
                client.observer = sampling(schema_checker)
                await client.initialize(f"watcher-{index}")
                await client.request("thread/resume", {"threadId": thread_id})
                ready.set()
                started = await client.next_notification("turn/started")
                results.append(await collect_stream(client, started["params"]["turn"]["id"]))

        with trio.fail_after(600):
            async with trio.open_nursery() as nursery:
                events = []
                for i in range(10):
                    ready = trio.Event()
                    events.append(ready)
                    nursery.start_soon(watch, i, ready, trio.Event())
                for ready in events:
                    await ready.wait()
                await owner.request(
                    "turn/start",
                    {
                        "threadId": thread_id,
                        "input": [{"type": "text", "text": f"/stream {COUNT} {SIZE}"}],
                    },
                )
        assert len(results) == 10
        for count, text, final in results:
            assert count == COUNT and text == final
