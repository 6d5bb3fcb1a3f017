"""`appserver-client watch` reconnects by itself (PROTOCOL.md §13): through a TCP proxy
the test cuts while a turn waits for its approval, the watch resumes the thread with
`afterSeq` and prints the rest of the turn, nothing missed and nothing twice."""

from __future__ import annotations

import os
import subprocess
import sys

import trio
from event_seq_support import Proxy

from appserver.client import connect_websocket

from support import run_ws_server

TIMEOUT = 60
CLIENT_ARGV = [sys.executable, "-m", "appserver.client_cli"]


async def test_watch_reconnects_and_continues_exactly() -> None:
    async with (
        run_ws_server("--in-memory", "--log-level", "warning") as server,
        connect_websocket(server.url) as client,
        trio.open_nursery() as nursery,
    ):
        proxy = Proxy(int(server.url.rsplit(":", 1)[1]))
        await nursery.start(proxy.serve)
        await client.initialize("test")
        started = await client.request("thread/start", {"approvalPolicy": "on-request"})
        thread_id = started["thread"]["id"]
        url = f"ws://127.0.0.1:{proxy.port}"
        argv = [*CLIENT_ARGV, "watch", "--url", url, thread_id, "--until-turn-completed"]
        with trio.fail_after(TIMEOUT):
            proc = await trio.lowlevel.open_process(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "NO_COLOR": "1"},
            )
            assert proc.stdout is not None
            output = b""

            async def read_until(marker: bytes) -> None:
                nonlocal output
                assert proc.stdout is not None
                while marker not in output:
                    chunk = await proc.stdout.receive_some()
                    assert chunk, f"watch exited early: {output.decode()}"
                    output += chunk

            await read_until(b"watching thread")
            script = "/say before the cut\n/run echo after-the-cut"
            await client.request(
                "turn/start",
                {"threadId": thread_id, "input": [{"type": "text", "text": script}]},
            )
            request = await client.next_server_request()
            await read_until(b"approval requested")
            proxy.cut()  # the watch's connection drops while the turn waits
            await client.respond(request.id, {"decision": "accept"})
            async for chunk in proc.stdout:
                output += chunk
            assert await proc.wait() == 0
        nursery.cancel_scope.cancel()
    text = output.decode()
    assert proxy.accepted == 2  # it reconnected, once
    assert "events were missed" not in text  # a replay, not a snapshot
    assert text.count("approval requested") == 1
    lines = text.splitlines()
    assert lines.count("before the cut") == 1  # the agent's message, once
    assert lines.count("after-the-cut") == 1  # the command's output, once, after the cut
    assert lines.index("after-the-cut") > lines.index("· approval resolved")
    assert "── turn completed" in text
