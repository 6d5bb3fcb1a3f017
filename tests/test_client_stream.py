"""`async for message in client`: notifications and server requests in the order the
server sent them (one stream), over a real websocket."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import trio

from appserver.client import ServerRequest, connect_websocket, spawn_stdio
from appserver.server import ServerConfig, open_server

TIMEOUT = 20


async def test_one_ordered_stream_of_notifications_and_requests() -> None:
    async with open_server(ServerConfig()) as server, trio.open_nursery() as nursery:
        port = await nursery.start(server.serve_websocket, "127.0.0.1", 0)
        async with connect_websocket(f"ws://127.0.0.1:{port}") as client:
            await client.initialize("stream")
            thread_id = (await client.request("thread/start"))["thread"]["id"]
            await client.next_notification("thread/started")  # taken: not in the stream
            text = [{"type": "text", "text": "/run echo ordered"}]
            await client.request("turn/start", {"threadId": thread_id, "input": text})
            seen: list[str] = []
            with trio.fail_after(TIMEOUT):
                message: dict[str, Any] | ServerRequest
                async for message in client:
                    if isinstance(message, ServerRequest):
                        seen.append(f"request:{message.method}")
                        await client.respond(message.id, {"decision": "accept"})
                        continue
                    seen.append(message["method"])
                    if message["method"] == "turn/completed":
                        break
        nursery.cancel_scope.cancel()
    assert "thread/started" not in seen
    request = seen.index("request:item/commandExecution/requestApproval")
    assert seen.index("turn/started") < request < seen.index("serverRequest/resolved")
    assert seen[-1] == "turn/completed"


async def test_the_stream_ends_when_the_connection_closes() -> None:
    async with open_server(ServerConfig()) as server, server.connect() as client:
        await client.initialize("stream")
        await client.request("thread/start")
        with trio.fail_after(TIMEOUT):
            await server.shutdown(graceful=False)
            methods = [m["method"] async for m in client if isinstance(m, dict)]
    assert methods[0] == "thread/started"
    assert client.closed


async def test_spawn_stdio_takes_the_process_options(tmp_path: Path) -> None:
    """`spawn_stdio(cwd=, env=, stderr=)` reach the child: new threads default to its cwd,
    a command it runs sees the environment given, and its stderr goes where asked."""
    log = tmp_path / "stderr.txt"
    env = {**os.environ, "APPSERVER_TEST_MARK": "from-the-parent"}
    with trio.fail_after(TIMEOUT), log.open("wb") as stderr:
        async with spawn_stdio(
            ["--in-memory"], cwd=tmp_path, env=env, stderr=stderr.fileno()
        ) as client:
            await client.initialize("options")
            started = await client.request("thread/start")
            ran = await client.request(
                "command/exec", {"command": ["sh", "-c", "echo $APPSERVER_TEST_MARK"]}
            )
    assert started["thread"]["cwd"] == str(tmp_path)
    assert ran["stdout"] == "from-the-parent\n"
    assert "appserver" in log.read_text()  # its banner/log lines went to the file
