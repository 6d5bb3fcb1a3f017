"""The server side of a websocket, framed by wsproto on the TCP (or Unix) stream itself.

trio-websocket puts a reader task and a message channel between the socket and its
reader: two scheduler hops per message, as much as the real Codex app-server's whole
round trip for a small request (benchmarks/README.md). Here the connection's inbound
task reads the socket and drives wsproto itself; its outbound task writes pre-built
frames (`Outbound.ws_frame`: server frames are unmasked, no extension is negotiated)
under one write lock shared with pongs, pings and the close frame. The client side
(client_connect.py) still uses trio-websocket (websocket.py `WebSocketTransport`).

`upgrade` runs the opening handshake on the request head the listener already read
(http_routes.py): a bad request is refused by wsproto (400), then `decide` may refuse it
(403, 401) or pick the subprotocol; an accepted socket becomes a `ServerWebSocket`.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Sequence

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from appserver.jsonrpc.codec import Outbound
from appserver.transports.base import TransportClosed

log = logging.getLogger("appserver.websocket")

RECEIVE_BYTES = 65536
# A batch over this many bytes is written in steps of it, each counted in `progress`.
PROGRESS_CHUNK = 64 * 1024
# After our close frame: how long to wait for the peer's before closing TCP.
CLOSE_WAIT_SECONDS = 1.0
CLOSE_TOO_BIG = 1009
CLOSE_ABNORMAL = 1006
_OPEN = (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING)


class Refusal(Exception):
    """Raised by `decide`: answer the upgrade with this HTTP status and body."""

    def __init__(self, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, list(headers)


def _peer(stream: trio.abc.Stream) -> str:
    sock = getattr(stream, "socket", None)
    try:
        address, port, *_ = sock.getpeername()  # type: ignore[union-attr]
    except (AttributeError, OSError, ValueError, TypeError):
        return "unix socket"
    address = str(address)
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


class ServerWebSocket:
    kind = "websocket"
    applies_backpressure = False
    half_close = False

    def __init__(
        self,
        stream: trio.abc.Stream,
        ws: WSConnection,
        *,
        max_message_bytes: int,
        ping_interval: float,
        ping_timeout: float,
    ) -> None:
        self._stream = stream
        self._ws = ws
        self._max = max_message_bytes
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._lock = trio.StrictFIFOLock()
        self._messages: collections.deque[str] = collections.deque()
        self._parts: list[str] = []
        self._size = 0
        self._pong = trio.Event()
        self._ended: TransportClosed | None = None
        self.peer = _peer(stream)
        self.progress = 0  # bytes written

    # --- reading (the connection's inbound task only) -------------------------------------

    async def receive(self) -> str:
        while not self._messages:
            if self._ended is not None:
                raise self._ended
            try:
                data = await self._stream.receive_some(RECEIVE_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self._ended = TransportClosed("websocket closed: connection lost")
                raise self._ended from exc
            if not data:
                self._ended = TransportClosed("websocket closed: connection lost")
                continue
            self._ws.receive_data(bytes(data))
            await self._events()
        return self._messages.popleft()

    async def _events(self) -> None:
        for event in self._ws.events():
            if isinstance(event, TextMessage | BytesMessage):
                self._size += len(event.data)
                if self._size > self._max:
                    reason = f"Exceeded maximum message size: {self._max} bytes"
                    await self._send_close(CLOSE_TOO_BIG, reason)
                    self._ended = TransportClosed(
                        f"websocket closed: {CLOSE_TOO_BIG} {reason}", code=CLOSE_TOO_BIG
                    )
                    return
                if isinstance(event, TextMessage):
                    self._parts.append(event.data)
                if event.message_finished:
                    if isinstance(event, TextMessage):
                        self._messages.append("".join(self._parts))
                    else:
                        log.info("ignoring a binary message of %d bytes", self._size)
                    self._parts.clear()
                    self._size = 0
            elif isinstance(event, Ping):
                await self._write(self._ws.send(event.response()))
            elif isinstance(event, Pong):
                self._pong.set()
            elif isinstance(event, CloseConnection):
                # The peer's close (answered with the same code), or wsproto's verdict on
                # a protocol error (1002, 1007: sent as ours).
                code, text = event.code, event.reason or ""
                await self._send_close(code, text)
                self._ended = TransportClosed(f"websocket closed: {code} {text}".strip(), code=code)
                return

    # --- writing ---------------------------------------------------------------------------

    async def _acquire(self) -> None:
        """The write lock; free (the common case), without the scheduler round that
        `async with lock` costs: the socket write that follows is the checkpoint."""
        try:
            self._lock.acquire_nowait()
        except trio.WouldBlock:
            await self._lock.acquire()

    async def _write(self, data: bytes) -> None:
        try:
            await self._acquire()
            try:
                await self._stream.send_all(data)
            finally:
                self._lock.release()
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise TransportClosed("websocket closed") from exc

    async def _send_close(self, code: int, reason: str) -> None:
        if self._ws.state not in _OPEN:
            return
        try:
            data = self._ws.send(CloseConnection(code=code, reason=reason or None))
        except LocalProtocolError:
            return
        with contextlib.suppress(TransportClosed):
            await self._write(data)

    async def send_all(self, frames: Sequence[Outbound]) -> None:
        """Write frames in order, all in one socket write (in 64 KiB steps when bigger,
        each counted in `progress` as it goes)."""
        if self._ws.state != ConnectionState.OPEN:
            raise TransportClosed("websocket closed")
        data = b"".join([frame.ws_frame for frame in frames])
        try:
            await self._acquire()
            try:
                if len(data) <= PROGRESS_CHUNK:
                    await self._stream.send_all(data)
                    self.progress += len(data)
                    return
                with memoryview(data) as view:
                    for start in range(0, len(data), PROGRESS_CHUNK):
                        chunk = view[start : start + PROGRESS_CHUNK]
                        await self._stream.send_all(chunk)
                        self.progress += len(chunk)
            finally:
                self._lock.release()
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise TransportClosed("websocket closed") from exc

    async def keepalive(self) -> None:
        while True:
            await trio.sleep(self._ping_interval)
            if self._ws.state != ConnectionState.OPEN:
                raise TransportClosed("websocket closed")
            self._pong = pong = trio.Event()
            await self._write(self._ws.send(Ping(payload=os.urandom(4))))
            with trio.move_on_after(self._ping_timeout):
                await pong.wait()
            if not pong.is_set():
                raise TransportClosed("peer did not answer a ping")

    async def aclose(self, code: int = 1000, reason: str = "", *, abort: bool = False) -> None:
        """Send our close frame (not after a cut-off frame: it would be garbage), wait a
        little for the peer's, then close the TCP stream (the server closes first,
        RFC 6455 §7.1.1). Called once the inbound task has ended."""
        try:
            if not abort and self._ws.state in _OPEN:
                with trio.move_on_after(CLOSE_WAIT_SECONDS):
                    await self._send_close(code, reason)
                    if self._ws.state == ConnectionState.LOCAL_CLOSING:
                        await self._drain_until_closed()
        finally:
            await trio.aclose_forcefully(self._stream)

    async def _drain_until_closed(self) -> None:
        while self._ws.state == ConnectionState.LOCAL_CLOSING:
            try:
                data = await self._stream.receive_some(RECEIVE_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            self._ws.receive_data(bytes(data))
            for _ in self._ws.events():
                pass


Decide = Callable[[Request], str | None]  # the subprotocol to select; raises Refusal


async def upgrade(
    stream: trio.abc.Stream,
    head: bytes,
    decide: Decide,
    on_connection: Callable[[ServerWebSocket], Awaitable[None]],
    *,
    max_message_bytes: int,
    ping_interval: float,
    ping_timeout: float,
) -> None:
    """The opening handshake on `head` (the request as read so far), then the
    connection, to its end; the stream is closed when this returns."""
    try:
        ws = WSConnection(ConnectionType.SERVER)
        request: Request | None = None
        try:
            ws.receive_data(head)
            for event in ws.events():
                if isinstance(event, Request):
                    request = event
        except RemoteProtocolError as exc:
            hint = exc.event_hint
            if isinstance(hint, RejectConnection):
                await stream.send_all(ws.send(hint))
            return
        if request is None:
            return  # an incomplete head: wsproto waits for more, the listener gave up
        try:
            subprotocol = decide(request)
        except Refusal as refusal:
            headers = [*refusal.headers, (b"content-length", str(len(refusal.body)).encode())]
            data = ws.send(
                RejectConnection(status_code=refusal.status, headers=headers, has_body=True)
            )
            data += ws.send(RejectData(data=refusal.body))
            await stream.send_all(data)
            return
        await stream.send_all(ws.send(AcceptConnection(subprotocol=subprotocol)))
        log.debug("websocket handshake accepted: %s %s", request.target, subprotocol or "")
        transport = ServerWebSocket(
            stream,
            ws,
            max_message_bytes=max_message_bytes,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
        )
        await on_connection(transport)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
    finally:
        await trio.aclose_forcefully(stream)
