"""Helpers of the numbered-event tests (PROTOCOL.md §13)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import trio

from appserver.client import Client, RpcError, ServerRequest

from support import SUBSCRIBER_METHODS

Message = dict[str, Any]


async def init_seq(client: Client, *, seq: bool = True, name: str = "seq-test") -> None:
    params: Message = {"clientInfo": {"name": name, "version": "1"}}
    if seq:
        params["capabilities"] = {"appserverEventSeq": True}
    await client.request("initialize", params)
    await client.notify("initialized")


def text(value: str) -> list[Message]:
    return [{"type": "text", "text": value, "text_elements": []}]


async def start_turn(client: Client, thread_id: str, script: str) -> str:
    result = await client.request("turn/start", {"threadId": thread_id, "input": text(script)})
    turn_id: str = result["turn"]["id"]
    return turn_id


async def collect_until_completed(client: Client, turn_id: str) -> list[Message]:
    """Every message (notifications as dicts, requests as dicts with id) up to and with
    turn/completed of `turn_id`."""
    got: list[Message] = []
    async for message in client:
        if isinstance(message, ServerRequest):
            raise AssertionError(f"unexpected server request {message}")
        got.append(message)
        if message.get("method") == "turn/completed" and message["params"]["turn"]["id"] == turn_id:
            return got
    raise AssertionError("connection closed before turn/completed")


def thread_events(messages: list[Message], thread_id: str) -> list[Message]:
    return [
        m
        for m in messages
        if m.get("method") in SUBSCRIBER_METHODS
        and (m.get("params") or {}).get("threadId") == thread_id
    ]


def seqs(messages: list[Message]) -> list[int]:
    return [m["seq"] for m in messages]


def without_seq(message: Message) -> Message:
    return {k: v for k, v in message.items() if k != "seq"}


async def rpc_error(client: Client, method: str, params: Any) -> Message:
    try:
        await client.request(method, params)
    except RpcError as exc:
        return {"code": exc.code, "message": exc.message, "data": exc.data}
    raise AssertionError(f"{method} succeeded")


async def next_numbered(client: Client, count: int) -> list[Message]:
    """The next `count` numbered notifications (broadcasts in between skipped)."""
    got: list[Message] = []
    while len(got) < count:
        message = await client.next_notification()
        if "seq" in message:
            got.append(message)
    return got


@attrs.define
class Proxy:
    """Forwards TCP connections to `target`; `cut()` drops every current one.

    `watch`, when set, sees each chunk the server sends before it is forwarded (websocket
    frames from a server are not masked: the JSON is readable) and returns None, or an
    offset in the chunk to cut at (the bytes before it forwarded, the rest not): a cut
    that always hits the live connection, wherever the client's buffers are. `held`,
    when set and not yet set, keeps new connections waiting (accepted, not forwarded)
    until it is."""

    target: int
    port: int = 0
    scopes: list[trio.CancelScope] = attrs.Factory(list)
    accepted: int = 0
    watch: Callable[[bytes], int | None] | None = None
    held: trio.Event | None = None

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self.handle, listeners)

    async def handle(self, client: trio.SocketStream) -> None:
        self.accepted += 1
        if self.held is not None:
            await self.held.wait()
        upstream = await trio.open_tcp_stream("127.0.0.1", self.target)
        with trio.CancelScope() as scope:
            self.scopes.append(scope)

            async def pump(src: trio.SocketStream, dst: trio.SocketStream) -> None:
                async for chunk in src:
                    at = None
                    if src is upstream and self.watch is not None:
                        at = self.watch(bytes(chunk))
                    if at is not None:
                        if at > 0:
                            await dst.send_all(chunk[:at])
                        self.cut()
                        return
                    await dst.send_all(chunk)
                scope.cancel()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(pump, client, upstream)
                nursery.start_soon(pump, upstream, client)
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(client)
            await trio.aclose_forcefully(upstream)

    def cut(self) -> None:
        for scope in self.scopes:
            scope.cancel()
        self.scopes.clear()
