"""An in-process transport: two memory channels of text frames, no sockets."""

from __future__ import annotations

import math
from collections.abc import Sequence

import trio

from appserver.jsonrpc.codec import Outbound
from appserver.transports.base import FrameTooLarge, TransportClosed


class MemoryTransport:
    kind = "memory"
    peer = "memory"
    applies_backpressure = True
    half_close = False

    def __init__(
        self,
        send: trio.MemorySendChannel[str],
        receive: trio.MemoryReceiveChannel[str],
        max_bytes: int = 2**63,
    ) -> None:
        self._send = send
        self._receive = receive
        self._max = max_bytes
        self.progress = 0  # frames

    async def receive(self) -> str:
        try:
            frame = await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError, trio.BrokenResourceError) as exc:
            raise TransportClosed("peer closed") from exc
        if len(frame) > self._max or (
            len(frame) * 4 > self._max and len(frame.encode()) > self._max
        ):
            raise FrameTooLarge(len(frame.encode("utf-8", "surrogatepass")), self._max)
        return frame

    async def send_all(self, frames: Sequence[Outbound]) -> None:
        try:
            for frame in frames:
                await self._send.send(frame.text)
                self.progress += 1
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise TransportClosed("peer closed") from exc

    async def keepalive(self) -> None:
        return None

    async def aclose(self, code: int = 1000, reason: str = "", *, abort: bool = False) -> None:
        await self._send.aclose()
        await self._receive.aclose()


def memory_transport_pair(max_bytes: int = 2**63) -> tuple[MemoryTransport, MemoryTransport]:
    """Two connected transports (server side, client side)."""
    a_send, b_receive = trio.open_memory_channel[str](math.inf)
    b_send, a_receive = trio.open_memory_channel[str](math.inf)
    return MemoryTransport(a_send, a_receive, max_bytes), MemoryTransport(b_send, b_receive)
