"""The operator's log (docs/operations.md "Logs"): a real server process at the default
level over a real websocket, its `--log-json` stderr parsed line by line."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio_websocket

from appserver.client import Client, connect_websocket
from appserver.server import ServerConfig, open_server
from appserver.testing import text_input
from appserver.transports.websocket import WebSocketTransport

from support import appserver_argv


@attrs.define(eq=False)
class LogServer:
    """A real `appserver --listen ws://127.0.0.1:0` process whose stderr is read line by
    line; `changed` is set (and replaced) on every new line."""

    process: trio.Process
    url: str = ""
    lines: list[str] = attrs.Factory(list)
    changed: trio.Event = attrs.Factory(trio.Event)

    def events(self) -> list[dict[str, Any]]:
        """Every JSON log line so far (the banner is plain text, by design)."""
        return [json.loads(line) for line in self.lines if line.startswith("{")]

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == event]

    async def until(self, ready: Callable[[], bool]) -> None:
        with trio.fail_after(10):
            while not ready():
                await self.changed.wait()

    async def wait_for(self, event: str, count: int = 1) -> list[dict[str, Any]]:
        await self.until(lambda: len(self.of(event)) >= count)
        return self.of(event)

    async def read(self) -> None:
        assert self.process.stderr is not None
        buf = b""
        async for chunk in self.process.stderr:
            *done, buf = (buf + chunk).split(b"\n")
            for line in done:
                text = line.decode(errors="replace")
                self.lines.append(text)
                if text.startswith("appserver listening on "):
                    self.url = text.removeprefix("appserver listening on ")
            self.changed.set()
            self.changed = trio.Event()
        self.changed.set()


@asynccontextmanager
async def log_server(*args: str) -> AsyncIterator[LogServer]:
    store = () if "--data-dir" in args else ("--in-memory",)
    argv = appserver_argv("--listen", "ws://127.0.0.1:0", *store, *args)
    async with trio.open_nursery() as nursery:
        start = trio.run_process
        process: trio.Process = await nursery.start(
            lambda task_status: start(
                argv,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                check=False,
                env=dict(os.environ),
                task_status=task_status,
            )
        )
        server = LogServer(process)
        nursery.start_soon(server.read)
        try:
            await server.until(lambda: bool(server.url) or process.returncode is not None)
            assert server.url, server.lines
            yield server
        finally:
            if process.returncode is None:
                process.terminate()
            with trio.move_on_after(15):
                await process.wait()
            if process.returncode is None:
                process.kill()


async def test_a_session_is_logged_one_line_per_event(tmp_path: Path) -> None:
    async with log_server("--log-json") as server:
        async with connect_websocket(server.url) as client:
            await client.initialize("log-test", "1.2")
            start = {"cwd": str(tmp_path), "approvalPolicy": "on-request"}
            thread_id = (await client.request("thread/start", start))["thread"]["id"]
            script = "/stream 50\n/run echo hi && echo there"
            turn = await client.request(
                "turn/start", {"threadId": thread_id, "input": text_input(script)}
            )
            turn_id = turn["turn"]["id"]
            first = await client.next_server_request("item/commandExecution/requestApproval")
            await client.respond(first.id, {"decision": "accept"})
            second = await client.next_server_request("item/commandExecution/requestApproval")
            await client.respond(second.id, {"decision": "decline"})
            await client.next_notification(
                "turn/completed", where=lambda p: p["turn"]["id"] == turn_id
            )
            await client.request(
                "command/exec", {"command": ["sh", "-c", "exit 3"], "cwd": str(tmp_path)}
            )
            await client.request("thread/unsubscribe", {"threadId": thread_id})
            await client.next_notification("thread/closed")
        closed = (await server.wait_for("connection.closed"))[0]
        lines = server.events()

    assert all(e["logger"].startswith("appserver") for e in lines), lines
    assert all(e["level"] in ("info", "warning") for e in lines), lines
    # No line per delta: 50 deltas streamed, a couple of dozen lines in all.
    assert len(lines) < 30, [e["message"] for e in lines]
    by: dict[str, list[dict[str, Any]]] = {}
    for entry in lines:
        by.setdefault(entry.get("event", ""), []).append(entry)

    (opened,) = by["connection.opened"]
    assert opened["transport"] == "websocket" and opened["peer"].startswith("127.0.0.1")
    conn = opened["connection_id"]
    (init,) = by["connection.initialized"]
    assert (init["connection_id"], init["client"], init["client_version"]) == (
        conn,
        "log-test",
        "1.2",
    )
    assert (closed["connection_id"], closed["client"], closed["peer"]) == (
        conn,
        "log-test",
        opened["peer"],
    )
    assert closed["reason"]

    (loaded,) = by["thread.loaded"]
    assert (loaded["thread_id"], loaded["how"]) == (thread_id, "created")
    (thread_closed,) = by["thread.closed"]
    assert (thread_closed["thread_id"], thread_closed["reason"]) == (thread_id, "unsubscribe")

    (started,) = by["turn.started"]
    assert (started["thread_id"], started["turn_id"], started["kind"]) == (
        thread_id,
        turn_id,
        "turn",
    )
    (ended,) = by["turn.ended"]
    assert (ended["turn_id"], ended["kind"], ended["status"]) == (turn_id, "turn", "completed")
    assert isinstance(ended["duration_ms"], int) and ended["duration_ms"] >= 0

    asked = by["request.asked"]
    assert [a["request_id"] for a in asked] == [first.id, second.id]
    for entry in asked:
        assert entry["method"] == "item/commandExecution/requestApproval"
        assert entry["item_id"] == first.params["itemId"]
        assert (entry["thread_id"], entry["turn_id"], entry["connections"]) == (
            thread_id,
            turn_id,
            [conn],
        )
    answered = by["request.answered"]
    assert [(a["request_id"], a["connection_id"], a["decision"]) for a in answered] == [
        (first.id, conn, "accept"),
        (second.id, conn, "decline"),
    ]

    run, exec_ = by["command.run"]
    assert run["source"] == "run" and run["command"] == "echo hi && echo there"
    assert (run["cwd"], run["thread_id"], run["turn_id"]) == (str(tmp_path), thread_id, turn_id)
    assert run["note"] == "1/2 part(s)"
    assert exec_["source"] == "command/exec" and exec_["argv"] == ["sh", "-c", "exit 3"]
    assert (exec_["cwd"], exec_["exit_code"], exec_["connection_id"]) == (str(tmp_path), 3, conn)
    # trio-websocket's handshake and frame chatter stays out at info.
    assert not [e for e in lines if e["logger"].startswith("trio")]


async def test_a_user_shell_command_is_logged(tmp_path: Path) -> None:
    async with log_server("--log-json") as server, connect_websocket(server.url) as client:
        await client.initialize("log-test")
        start = {"cwd": str(tmp_path)}
        thread_id = (await client.request("thread/start", start))["thread"]["id"]
        await client.request("thread/shellCommand", {"threadId": thread_id, "command": "exit 4"})
        await client.next_notification("turn/completed")
        (run,) = await server.wait_for("command.run")
        (ended,) = await server.wait_for("turn.ended")
    assert (run["source"], run["command"], run["exit_code"]) == ("userShell", "exit 4", 4)
    assert (run["thread_id"], run["cwd"]) == (thread_id, str(tmp_path))
    assert (ended["kind"], ended["thread_id"], ended["status"]) == ("shell", thread_id, "completed")


async def test_shutdown_says_what_it_waits_for(tmp_path: Path) -> None:
    args = ("--log-json", "--shutdown-timeout", "7")
    async with log_server(*args) as server, connect_websocket(server.url) as client:
        await client.initialize("log-test")
        start = {"cwd": str(tmp_path)}
        thread_id = (await client.request("thread/start", start))["thread"]["id"]
        sleep = {"threadId": thread_id, "input": text_input("/sleep 60")}
        await client.request("turn/start", sleep)
        await server.wait_for("turn.started")
        server.process.send_signal(signal.SIGTERM)
        (notice,) = await server.wait_for("shutdown")
        assert notice["message"] == (
            "received SIGTERM; waiting for 1 running turn (up to 7 s); signal again to stop now"
        )
        assert (notice["running_turns"], notice["timeout_s"]) == (1, 7.0)
        server.process.send_signal(signal.SIGTERM)
        forced = (await server.wait_for("shutdown", 2))[1]
        assert forced["forced"] is True
        (ended,) = await server.wait_for("turn.ended")
        assert ended["status"] == "interrupted"
        (closed,) = await server.wait_for("thread.closed")
        assert closed["reason"] == "shutdown"


async def test_text_logs_at_debug_show_the_websocket_handshake() -> None:
    async with log_server("--log-level", "debug") as server:
        async with connect_websocket(server.url) as client:
            await client.initialize("log-test")
        await server.until(lambda: any("handshake accepted" in line for line in server.lines))


async def test_crash_recovered_turns_are_logged_at_startup(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with log_server("--data-dir", str(data)) as first, connect_websocket(first.url) as client:
        await client.initialize("log-test")
        start = {"cwd": str(tmp_path)}
        thread_id = (await client.request("thread/start", start))["thread"]["id"]
        sleep = {"threadId": thread_id, "input": text_input("/sleep 60")}
        await client.request("turn/start", sleep)
        await first.until(lambda: any("turn" in line and "started" in line for line in first.lines))
        first.process.kill()
    async with log_server("--data-dir", str(data), "--log-json") as second:
        (recovered,) = await second.wait_for("crash_recovery")
        assert recovered["interrupted_turns"] == 1
        async with connect_websocket(second.url) as client:
            await client.initialize("log-test")
            await client.request("thread/resume", {"threadId": thread_id})
            (loaded,) = await second.wait_for("thread.loaded")
    assert (loaded["thread_id"], loaded["how"]) == (thread_id, "resumed")


async def test_a_unix_socket_connection_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """trio-websocket cannot name a Unix socket's peer (it raises): the line says so."""
    caplog.set_level(logging.INFO, logger="appserver")
    with tempfile.TemporaryDirectory(prefix="as-", dir="/tmp") as short:
        async with open_server(ServerConfig()) as server, trio.open_nursery() as nursery:
            path = await nursery.start(server.serve_unix, Path(short) / "s.sock")
            stream = await trio.open_unix_socket(os.fspath(path))
            ws = await trio_websocket.wrap_client_stream(nursery, stream, "localhost", "/")
            async with Client.open(WebSocketTransport(ws, ping_interval=3600)) as client:
                await client.initialize("unix-test")  # logged before it is answered
                await ws.aclose()
            nursery.cancel_scope.cancel()
    fields = [vars(r) for r in caplog.records]
    (opened,) = [f for f in fields if f.get("event") == "connection.opened"]
    (init,) = [f for f in fields if f.get("event") == "connection.initialized"]
    assert (opened["transport"], opened["peer"]) == ("websocket", "unix socket")
    assert (init["connection_id"], init["client"]) == (opened["connection_id"], "unix-test")
