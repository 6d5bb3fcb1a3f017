"""A client session that reconnects by itself (PROTOCOL.md §13).

    async with resuming_session(lambda: connect_websocket(url)) as session:
        thread = await session.start_thread()
        await session.request("turn/start", {...})
        async for event in session:
            ...  # dicts (notifications), ServerRequests, Resynced

The session connects with `capabilities.appserverEventSeq`, remembers the last `seq` it
delivered per followed thread and, when the connection drops (a network failure, a slow
consumer dropped by the server), reconnects and `thread/resume`s every followed thread
with `afterSeq`: the events it missed follow, then the live stream, so the iteration goes
on with no gap and no duplicate. When the server's log no longer reaches back (or no
event of the thread was seen yet), the resume answers a snapshot instead and the session
yields `Resynced(thread_id, result)` with that thread/resume result. Answers to server
requests (`respond`) are sent again after a reconnect until the server says the request
is resolved, in case the dropped connection lost them (the server ignores a second
answer). Broadcasts (thread/status/changed...) missed while disconnected are not replayed.

A background task in the session's nursery owns the connection; events reach the
iteration through a bounded channel, so a consumer that stops reading holds the client's
buffers, whose overflow drops the connection, which the session then resumes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import attrs
import trio

from appserver.client import Client
from appserver.client_errors import (
    ClientError,
    ConnectError,
    ConnectionClosedError,
    RpcError,
    ServerRequest,
)

log = logging.getLogger("appserver.client")

Connect = Callable[[], AbstractAsyncContextManager[Client]]
Event = dict[str, Any] | ServerRequest


@attrs.frozen
class Resynced:
    """A followed thread was resumed from a snapshot (its log did not reach back):
    `result` is the thread/resume result, the thread as it stands now."""

    thread_id: str
    result: dict[str, Any]


@attrs.define(eq=False)
class ResumingSession:
    connect: Connect
    client_name: str = "appserver-client"
    reconnect_delay: float = 0.2
    max_reconnects: int = 20  # consecutive failed attempts before giving up
    # True: `connect` yields clients it already initialized, with
    # `capabilities.appserverEventSeq: true` (e.g. the client CLI's own connect).
    initialized: bool = False
    _client: Client | None = None
    _connected: trio.Event = attrs.Factory(trio.Event)
    # Followed threads: the last seq delivered (None: none yet) and resume params.
    last_seq: dict[str, int | None] = attrs.Factory(dict)
    _resume_params: dict[str, dict[str, Any]] = attrs.Factory(dict)
    _request_seq: dict[int | str, int] = attrs.Factory(dict)
    _answers: dict[int | str, Any] = attrs.Factory(dict)  # answered, not yet resolved
    reconnects: int = 0
    _send: trio.MemorySendChannel[Event | Resynced] = attrs.field(init=False)
    _recv: trio.MemoryReceiveChannel[Event | Resynced] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._send, self._recv = trio.open_memory_channel[Event | Resynced](256)

    # --- what the user calls --------------------------------------------------------

    async def client(self) -> Client:
        """The current connection (waiting for one while reconnecting)."""
        while self._client is None or self._client.closed:
            await self._connected.wait()
        return self._client

    async def request(self, method: str, params: Any = None) -> Any:
        return await (await self.client()).request(method, params)

    async def start_thread(self, **params: Any) -> dict[str, Any]:
        """thread/start, then follow the new thread."""
        result: dict[str, Any] = await self.request("thread/start", params)
        self.last_seq.setdefault(result["thread"]["id"], None)
        return result

    async def follow(self, thread_id: str, **params: Any) -> dict[str, Any]:
        """thread/resume (with afterSeq when a seq of the thread was seen) and follow."""
        self._resume_params[thread_id] = params
        return await self._resume(await self.client(), thread_id)

    async def respond(self, request_id: int | str, result: Any) -> None:
        """Answer a server request. The answer is kept until the server says the request
        is resolved: a connection that breaks as it is sent is not an error here, the
        next connection sends it again."""
        self._answers[request_id] = result
        try:
            await (await self.client()).respond(request_id, result)
        except ConnectionClosedError as exc:
            log.info("answer to %r not sent (%s); sent again on reconnect", request_id, exc)

    def __aiter__(self) -> ResumingSession:
        return self

    async def __anext__(self) -> Event | Resynced:
        try:
            return await self._recv.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    # --- the connection task --------------------------------------------------------

    async def _resume(self, client: Client, thread_id: str) -> dict[str, Any]:
        params = {**self._resume_params.get(thread_id, {}), "threadId": thread_id}
        after = self.last_seq.get(thread_id)
        if after is not None:
            params["afterSeq"] = after
        result: dict[str, Any] = await client.request("thread/resume", params)
        self.last_seq.setdefault(thread_id, None)
        if after is not None and result.get("replay") is None:
            await self._send.send(Resynced(thread_id, result))
        return result

    def _observe(self, chained: Callable[[dict[str, Any], str | None], None] | None) -> Any:
        def observer(message: dict[str, Any], method: str | None) -> None:
            if "method" in message and "id" in message and "seq" in message:
                self._request_seq[message["id"]] = message["seq"]
            if chained is not None:
                chained(message, method)

        return observer

    def _delivered(self, event: Event) -> None:
        if isinstance(event, ServerRequest):
            seq = self._request_seq.pop(event.id, None)
            params = event.params
        else:
            seq = event.get("seq")
            params = event.get("params")
            if event.get("method") == "serverRequest/resolved" and isinstance(params, dict):
                self._answers.pop(params.get("requestId"), None)  # type: ignore[arg-type]
        thread_id = params.get("threadId") if isinstance(params, dict) else None
        if isinstance(seq, int) and thread_id in self.last_seq:
            self.last_seq[thread_id] = max(seq, self.last_seq[thread_id] or 0)

    async def _attach(self, client: Client) -> None:
        client.observer = self._observe(client.observer)
        if not self.initialized:
            caps = {"appserverEventSeq": True}
            info = {"name": self.client_name, "version": "0"}
            await client.request("initialize", {"clientInfo": info, "capabilities": caps})
            await client.notify("initialized")
        for thread_id in list(self.last_seq):
            await self._resume(client, thread_id)
        for request_id, result in list(self._answers.items()):
            await client.respond(request_id, result)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        failures = 0
        started = False
        async with self._send:
            while True:
                try:
                    async with self.connect() as client:
                        await self._attach(client)
                        failures = 0
                        self._client = client
                        self._connected.set()
                        if not started:
                            started = True
                            task_status.started()
                        async for event in client:
                            self._delivered(event)
                            await self._send.send(event)
                except (ClientError, OSError) as exc:
                    if isinstance(exc, RpcError) or (
                        not started and failures == 0 and isinstance(exc, ConnectError)
                    ):
                        raise
                    log.info("connection lost (%s); reconnecting", exc)
                self._client = None
                self._connected = trio.Event()
                failures += 1
                if failures > self.max_reconnects:
                    raise ConnectError(f"gave up after {self.max_reconnects} reconnects")
                self.reconnects += 1
                await trio.sleep(self.reconnect_delay)


@asynccontextmanager
async def resuming_session(
    connect: Connect,
    *,
    client_name: str = "appserver-client",
    reconnect_delay: float = 0.2,
    max_reconnects: int = 20,
    initialized: bool = False,
) -> AsyncIterator[ResumingSession]:
    """A `ResumingSession` connected (initialized with appserverEventSeq, unless
    `initialized`: `connect` does it) on entry; its connection task ends with the block."""
    session = ResumingSession(
        connect,
        client_name,
        reconnect_delay,
        max_reconnects,
        initialized,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(session.run)
        try:
            yield session
        finally:
            nursery.cancel_scope.cancel()
