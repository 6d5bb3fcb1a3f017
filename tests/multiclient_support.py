"""Helpers for the multi-client, lifecycle, flow-control and shutdown tests.

Everything here drives the server from the outside, through real transports (websocket,
stdio pipes, a real CLI subprocess) or the in-process client; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import attrs
import trio

from appserver.client import Client, connect_websocket

from support import SchemaChecker, appserver_argv

Message = dict[str, Any]

STREAM_ALPHABET = "abcdefghijklmnopqrstuvwxyz"


def text_input(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text}]


def stream_text(count: int, size: int = 8) -> str:
    """The final text of the builtin agent's `/stream COUNT SIZE` (PROTOCOL.md §10)."""
    total = count * size
    return (STREAM_ALPHABET * (total // len(STREAM_ALPHABET) + 1))[:total]


def params_of(message: Message) -> dict[str, Any]:
    params: dict[str, Any] = message.get("params") or {}
    return params


# Streaming notifications arrive by the thousand; a full JSON-schema validation costs
# about a millisecond each, which would make the client itself a slow reader. The first
# FULLY_CHECKED of each kind per connection are validated in full, the rest against the
# exact shape of those (same keys, string delta).
BULK_METHODS = frozenset(
    {
        "item/agentMessage/delta",
        "item/commandExecution/outputDelta",
        "item/reasoning/summaryTextDelta",
        "item/fileChange/outputDelta",
    }
)
FULLY_CHECKED = 20


class Recorder:
    """Every message a client receives, in arrival order (notifications, server requests
    and answers alike). Chains the schema check, so each one is still validated."""

    def __init__(self, client: Client, checker: SchemaChecker | None = None) -> None:
        self.messages: list[Message] = []
        inner = client.observer
        if checker is not None:
            inner = checker.check
        seen: dict[str, int] = {}
        shapes: dict[str, set[str]] = {}

        def observe(message: Message, method: str | None) -> None:
            kind = message.get("method")
            if kind in BULK_METHODS and "id" not in message:
                assert isinstance(kind, str)
                seen[kind] = seen.get(kind, 0) + 1
                if seen[kind] > FULLY_CHECKED:
                    params = params_of(message)
                    assert message.get("jsonrpc") == "2.0", message
                    assert set(message) == {"jsonrpc", "method", "params"}, message
                    assert set(params) == shapes[kind], message
                    assert isinstance(params["delta"], str), message
                    self.messages.append(message)
                    return
                shapes[kind] = set(params_of(message))
            if inner is not None:
                inner(message, method)
            self.messages.append(message)

        client.observer = observe

    def notifications(self, thread_id: str | None = None) -> list[Message]:
        out = [m for m in self.messages if "method" in m and "id" not in m]
        if thread_id is not None:
            out = [m for m in out if params_of(m).get("threadId") == thread_id]
        return out

    def methods(self, thread_id: str | None = None) -> list[str]:
        return [m["method"] for m in self.notifications(thread_id)]

    def server_requests(self) -> list[Message]:
        return [m for m in self.messages if "method" in m and "id" in m]

    def answers(self) -> list[Message]:
        return [m for m in self.messages if "method" not in m]

    def index(self, predicate: Callable[[Message], bool]) -> int:
        for i, message in enumerate(self.messages):
            if predicate(message):
                return i
        raise AssertionError("no recorded message matches")

    def indexes(self, predicate: Callable[[Message], bool]) -> list[int]:
        return [i for i, message in enumerate(self.messages) if predicate(message)]


def is_notification(method: str, **params: Any) -> Callable[[Message], bool]:
    def match(message: Message) -> bool:
        return (
            message.get("method") == method
            and "id" not in message
            and all(params_of(message).get(k) == v for k, v in params.items())
        )

    return match


def is_answer_with(result: Any) -> Callable[[Message], bool]:
    """The answer carrying exactly this result object (as returned by Client.request)."""
    return lambda m: "method" not in m and m.get("result") is result


def is_server_request(request_id: int | str) -> Callable[[Message], bool]:
    return lambda m: "method" in m and m.get("id") == request_id


@attrs.define
class Peer:
    """A connected, initialized client and everything it has received."""

    client: Client
    log: Recorder
    name: str


@asynccontextmanager
async def open_peer(
    url: str, checker: SchemaChecker, name: str, *, opt_out: Sequence[str] = ()
) -> AsyncIterator[Peer]:
    """A real websocket client, schema-checked and recorded, initialized as `name`."""
    async with connect_websocket(url) as client:
        log = Recorder(client, checker)
        await client.initialize(name, opt_out=opt_out)
        yield Peer(client, log, name)


@asynccontextmanager
async def open_peers(url: str, checker: SchemaChecker, *names: str) -> AsyncIterator[list[Peer]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(open_peer(url, checker, n)) for n in names]


async def start_thread(client: Client, **params: Any) -> str:
    result = await client.request("thread/start", params or None)
    thread_id: str = result["thread"]["id"]
    return thread_id


async def start_turn(client: Client, thread_id: str, text: str, **extra: Any) -> str:
    result = await client.request(
        "turn/start", {"threadId": thread_id, "input": text_input(text), **extra}
    )
    turn_id: str = result["turn"]["id"]
    return turn_id


async def turn_completed(client: Client, thread_id: str, turn_id: str) -> dict[str, Any]:
    """The `turn` of this turn's `turn/completed` (waits for it)."""
    message = await client.next_notification(
        "turn/completed",
        where=lambda p: p.get("threadId") == thread_id and p["turn"]["id"] == turn_id,
    )
    turn: dict[str, Any] = params_of(message)["turn"]
    return turn


async def turn_status(client: Client, thread_id: str, turn_id: str) -> str:
    """The final status of this turn, from its `turn/completed` (waits for it)."""
    status: str = (await turn_completed(client, thread_id, turn_id))["status"]
    return status


async def status_change(
    client: Client, thread_id: str, status_type: str, **status: Any
) -> dict[str, Any]:
    message = await client.next_notification(
        "thread/status/changed",
        where=lambda p: (
            p.get("threadId") == thread_id
            and p["status"]["type"] == status_type
            and all(p["status"].get(k) == v for k, v in status.items())
        ),
    )
    return params_of(message)


async def read_thread(client: Client, thread_id: str, *, turns: bool = True) -> dict[str, Any]:
    result = await client.request("thread/read", {"threadId": thread_id, "includeTurns": turns})
    thread: dict[str, Any] = result["thread"]
    return thread


async def loaded_ids(client: Client) -> list[str]:
    result = await client.request("thread/loaded/list")
    ids: list[str] = result["data"]
    return ids


WAITING_ON_APPROVAL = {"type": "active", "activeFlags": ["waitingOnApproval"]}


# --- a real CLI subprocess ------------------------------------------------------------------


@attrs.define(eq=False)
class CliServer:
    """A running `appserver` process whose stderr is collected line by line; tests can
    wait for a line without polling."""

    process: trio.Process
    lines: list[str] = attrs.Factory(list)
    url: str = ""
    _changed: trio.Event = attrs.Factory(trio.Event)
    _eof: bool = False

    async def wait_for_line(self, predicate: Callable[[str], bool]) -> str:
        while True:
            for line in self.lines:
                if predicate(line):
                    return line
            if self._eof:
                raise AssertionError(f"stderr ended without the expected line: {self.lines}")
            await self._changed.wait()

    def _add(self, text: str) -> None:
        self.lines.extend(text.splitlines())
        self._changed.set()
        self._changed = trio.Event()

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)


@asynccontextmanager
async def run_cli(*args: str, listen_ws: bool = True) -> AsyncIterator[CliServer]:
    """Start the real CLI (`--listen ws://127.0.0.1:0` unless `listen_ws` is false) and
    yield it once the banner is printed. On leaving, a still-running process is killed."""
    argv = appserver_argv(*(["--listen", "ws://127.0.0.1:0"] if listen_ws else []), *args)
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            _run_process, argv, {**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        server = CliServer(process)
        nursery.start_soon(_drain_stderr, server)
        try:
            if listen_ws:
                banner = await server.wait_for_line(
                    lambda ln: ln.startswith("appserver listening on ")
                )
                server.url = banner.removeprefix("appserver listening on ")
            yield server
        finally:
            if process.returncode is None:
                process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()


async def _drain_stderr(server: CliServer) -> None:
    stderr = server.process.stderr
    assert stderr is not None
    buffer = b""
    async for chunk in stderr:
        buffer += chunk
        *done, buffer = buffer.split(b"\n")
        if done:
            server._add("\n".join(d.decode(errors="replace") for d in done))
    if buffer:
        server._add(buffer.decode(errors="replace"))
    server._eof = True
    server._changed.set()


async def _run_process(
    argv: Sequence[str],
    env: dict[str, str],
    *,
    task_status: trio.TaskStatus[trio.Process] = trio.TASK_STATUS_IGNORED,
) -> None:
    await trio.run_process(
        argv,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
        env=env,
        task_status=task_status,
    )


def encode(message: Message) -> str:
    return json.dumps({"jsonrpc": "2.0", **message})
