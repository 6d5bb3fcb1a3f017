"""The Python client of PROTOCOL.md §11: websocket, stdio subprocess or in-process.

async with connect_websocket("ws://127.0.0.1:4500") as client:
    await client.initialize("my-tool")
    started = await client.request("thread/start")
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from appserver.client_buffers import Buffers
from appserver.client_errors import (
    ClientError,
    ClientOverflow,
    ConnectError,
    ConnectionClosedError,
    RpcError,
    ServerRequest,
    single_errors,
)
from appserver.client_limits import (
    OVERFLOW_CLOSE_CODE,
    OVERFLOW_CLOSE_REASON,
    BufferLimits,
    frame_size,
)
from appserver.jsonrpc.codec import Outbound
from appserver.transports.base import Transport, TransportClosed

log = logging.getLogger("appserver.client")

CLIENT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024

__all__ = [
    "BufferLimits",
    "Client",
    "ClientError",
    "ClientOverflow",
    "ConnectError",
    "ConnectionClosedError",
    "RpcError",
    "ServerRequest",
    "connect_websocket",
    "spawn_stdio",
]


@attrs.define(eq=False)
class _Slot:
    done: trio.Event = attrs.Factory(trio.Event)
    message: dict[str, Any] | None = None


class Client:
    """A JSON-RPC client. Notifications and server requests are buffered in arrival
    order, within `limits`; `next_notification` / `next_server_request` take the first
    match, `async for message in client` takes them all in order."""

    def __init__(self, transport: Transport, limits: BufferLimits | None = None) -> None:
        self._transport = transport
        self._ids = itertools.count(1)
        self._pending: dict[int | str, _Slot] = {}
        self._buffers = Buffers(limits or BufferLimits())
        self._arrived = trio.Event()
        self._closed = False
        self._send_lock = trio.Lock()
        self.process: trio.Process | None = None
        self.close_reason: str | None = None
        self.close_code: int | None = None
        self._pending_methods: dict[int | str, str] = {}
        # Called with every message received and, for answers, the request's method.
        self.observer: Callable[[dict[str, Any], str | None], None] | None = None

    @classmethod
    @asynccontextmanager
    async def open(
        cls, transport: Transport, limits: BufferLimits | None = None
    ) -> AsyncIterator[Client]:
        client = cls(transport, limits)
        with single_errors():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client._reader)
                try:
                    yield client
                finally:
                    nursery.cancel_scope.cancel()
                    with trio.CancelScope(shield=True), trio.move_on_after(2):
                        await transport.aclose()

    # --- reading ------------------------------------------------------------------------

    async def _reader(self) -> None:
        try:
            while True:
                try:
                    text = await self._transport.receive()
                except TransportClosed as exc:
                    self.close_reason = str(exc)
                    self.close_code = exc.code
                    break
                message = json.loads(text)
                if self.observer is not None:
                    msg_id = message.get("id") if "method" not in message else None
                    method = self._pending_methods.get(msg_id) if msg_id is not None else None
                    self.observer(message, method)
                if not self._dispatch(message, frame_size(text)):
                    break
                if self._buffers.half_full():
                    # Frames that arrived together (a stdio chunk holds hundreds) are
                    # handed out one by one: a consumer that reads gets to run before
                    # the buffer fills, however the frames were batched.
                    await trio.sleep(0)  # noqa: ASYNC115 - the high-level checkpoint
        finally:
            self._closed = True
            for slot in self._pending.values():
                slot.done.set()
            self._arrived.set()
        if self._overflow is not None:  # as the server drops a slow consumer
            log.warning("%s", self._overflow_error())
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await self._transport.aclose(OVERFLOW_CLOSE_CODE, OVERFLOW_CLOSE_REASON)

    def _dispatch(self, msg: dict[str, Any], size: int) -> bool:
        """File one message; False when it does not fit the buffer (overflow)."""
        if "method" not in msg:
            slot = self._pending.pop(msg.get("id"), None)  # type: ignore[arg-type]
            if slot is not None:  # answers are never held back by the bounds
                slot.message = msg
                slot.done.set()
                return True
            log.debug("unmatched response: %r", msg)
        if not self._buffers.add(msg, size):
            return False
        self._arrived.set()
        self._arrived = trio.Event()
        return True

    @property
    def limits(self) -> BufferLimits:
        return self._buffers.limits

    @limits.setter
    def limits(self, limits: BufferLimits) -> None:
        self._buffers.limits = limits

    @property
    def _overflow(self) -> tuple[str, int, int, int] | None:
        return self._buffers.overflow

    def _overflow_error(self) -> ClientOverflow:
        return self._buffers.overflow_error()

    @property
    def overflowed(self) -> bool:
        """True once the buffer bound was passed and the client closed the connection."""
        return self._overflow is not None

    def buffered(self) -> tuple[int, int]:
        """(messages, bytes) buffered now and not yet taken."""
        return self._buffers.count(), self._buffers.bytes

    @property
    def closed(self) -> bool:
        return self._closed

    # --- writing ------------------------------------------------------------------------

    async def send_raw(self, text: str) -> None:
        """Send one frame as is (for tests of bad input)."""
        if self._overflow is not None:
            raise self._overflow_error()
        async with self._send_lock:
            try:
                await self._transport.send_all([Outbound(text)])
            except TransportClosed as exc:
                raise ConnectionClosedError(str(exc)) from exc

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_raw(json.dumps(message))

    async def request(self, method: str, params: Any = None, *, id: int | str | None = None) -> Any:
        """Send a request and return its result; raises RpcError for an error answer."""
        msg = await self.request_raw(method, params, id=id)
        if "error" in msg:
            err = msg["error"]
            raise RpcError(err.get("code"), err.get("message", ""), err.get("data"))
        return msg.get("result")

    async def request_raw(
        self, method: str, params: Any = None, *, id: int | str | None = None
    ) -> dict[str, Any]:
        """Send a request and return the whole answer message."""
        request_id = next(self._ids) if id is None else id
        slot = _Slot()
        self._pending[request_id] = slot
        self._pending_methods[request_id] = method
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        try:
            await self.send(message)
            await slot.done.wait()
        finally:
            self._pending.pop(request_id, None)
            self._pending_methods.pop(request_id, None)
        if slot.message is None:
            if self._overflow is not None:
                raise self._overflow_error()
            raise ConnectionClosedError(f"connection closed before the answer to {method}")
        return slot.message

    async def notify(self, method: str, params: Any = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)

    async def initialize(
        self,
        name: str = "appserver-client",
        version: str = "0",
        *,
        opt_out: Sequence[str] = (),
        title: str | None = None,
        capabilities: Mapping[str, Any] | None = None,
    ) -> Any:
        """initialize + initialized; `capabilities` are sent as given (e.g.
        `{"appserverEventSeq": True}`, PROTOCOL.md §13), `opt_out` joins them."""
        info: dict[str, Any] = {"name": name, "version": version}
        if title is not None:
            info["title"] = title
        params: dict[str, Any] = {"clientInfo": info}
        caps = dict(capabilities or {})
        if opt_out:
            caps["optOutNotificationMethods"] = list(opt_out)
        if caps:
            params["capabilities"] = caps
        result = await self.request("initialize", params)
        await self.notify("initialized")
        return result

    async def respond(self, request_id: int | str, result: Any) -> None:
        await self.send({"jsonrpc": "2.0", "id": request_id, "result": result})

    async def respond_error(self, request_id: int | str, code: int, message: str) -> None:
        await self.send(
            {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
        )

    # --- waiting for messages -----------------------------------------------------------

    async def _wait_for(self, take: Callable[[], Any]) -> Any:
        while True:
            if self._overflow is not None:
                raise self._overflow_error()
            found = take()
            if found is not None:
                return found
            if self._closed:
                raise ConnectionClosedError(self.close_reason or "connection closed")
            await self._arrived.wait()

    async def next_notification(
        self,
        method: str | None = None,
        *,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """The first buffered notification matching `method` and `where` (waiting for
        one if needed). Earlier non-matching notifications stay buffered. Each message is
        looked at once per wait (`where` is called at most once per message), so a wait
        behind a long stream costs what arrives, not the buffer's length per arrival."""
        seen = -1  # the arrival number of the last message this wait looked at

        def take() -> dict[str, Any] | None:
            nonlocal seen
            found, seen = self._buffers.take_notification(method, where, seen)
            return found

        result: dict[str, Any] = await self._wait_for(take)
        return result

    async def next_server_request(
        self,
        method: str | None = None,
        *,
        where: Callable[[Any], bool] | None = None,
    ) -> ServerRequest:
        """The first buffered server request matching `method` and `where(params)`
        (each request looked at once per wait, as `next_notification`)."""
        seen = -1

        def take() -> ServerRequest | None:
            nonlocal seen
            found, seen = self._buffers.take_request(method, where, seen)
            return found

        result: ServerRequest = await self._wait_for(take)
        return result

    @property
    def notifications(self) -> list[dict[str, Any]]:
        """The notifications buffered so far (not removed)."""
        return list(self._buffers.notifications)

    def drain_notifications(self) -> list[dict[str, Any]]:
        """Take every buffered notification."""
        return self._buffers.drain_notifications()

    def __aiter__(self) -> Client:
        return self

    async def __anext__(self) -> dict[str, Any] | ServerRequest:
        """`async for message in client`: every notification (a dict) and server request
        (a `ServerRequest`) in the order the server sent them, taken from the same
        buffers `next_notification` / `next_server_request` take from; ends when the
        connection has closed and nothing is left, or raises `ClientOverflow` when the
        client closed it because the buffers passed their bound."""

        take = self._buffers.take_next
        try:
            message: dict[str, Any] | ServerRequest = await self._wait_for(take)
        except ClientOverflow:
            raise
        except ConnectionClosedError:
            raise StopAsyncIteration from None
        return message

    async def wait_closed(self) -> None:
        while not self._closed:
            await self._arrived.wait()

    async def close(self) -> None:
        await self._transport.aclose()


# The connectors live in client_connect.py (imported last: they use Client).
from appserver.client_connect import connect_websocket, spawn_stdio  # noqa: E402
