"""Newline-delimited JSON over a pair of byte streams (stdio, subprocess pipes)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import trio

from appserver.jsonrpc.codec import Outbound
from appserver.transports.base import FrameTooLarge, TransportClosed

READ_CHUNK = 65536


class LineTransport:
    """One message per `\\n`-terminated UTF-8 line. A line over `max_bytes` is skipped
    entirely and reported as FrameTooLarge; reading goes on with the next line."""

    kind = "stdio"
    peer = "stdio"
    applies_backpressure = True
    half_close = True

    def __init__(
        self,
        receive_stream: trio.abc.ReceiveStream,
        send_stream: trio.abc.SendStream,
        max_bytes: int,
    ) -> None:
        self._rx = receive_stream
        self._tx = send_stream
        self._max = max_bytes
        self.progress = 0
        self._buf = bytearray()
        self._scan_from = 0  # bytes of _buf already known to hold no newline
        self._skipping = 0  # >0 while discarding an oversized line (bytes dropped so far)
        self._eof = False

    async def receive(self) -> str | bytes:
        while True:
            nl = self._buf.find(b"\n", self._scan_from)
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                self._scan_from = 0
                if self._skipping:
                    size = self._skipping + len(line)
                    self._skipping = 0
                    raise FrameTooLarge(size, self._max)
                if len(line) > self._max:
                    raise FrameTooLarge(len(line), self._max)
                if line.endswith(b"\r"):
                    line = line[:-1]
                if not line.strip():
                    continue
                try:
                    return line.decode("utf-8")
                except UnicodeDecodeError:
                    return line  # the codec answers invalid UTF-8 with a parse error
            if len(self._buf) > self._max:
                self._skipping += len(self._buf)
                self._buf.clear()
            self._scan_from = len(self._buf)
            if self._eof:
                raise TransportClosed("end of input")
            try:
                chunk = await self._rx.receive_some(READ_CHUNK)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise TransportClosed(str(exc)) from exc
            if not chunk:
                self._eof = True
                if self._buf and not self._skipping:
                    self._buf += b"\n"  # a final line without newline still counts
                elif self._skipping:
                    size = self._skipping + len(self._buf)
                    self._skipping = 0
                    self._buf.clear()
                    raise FrameTooLarge(size, self._max)
            else:
                self._buf += chunk

    async def send_all(self, frames: Sequence[Outbound]) -> None:
        data = b"".join([part for frame in frames for part in (frame.utf8, b"\n")])
        try:
            await self._tx.send_all(data)
            self.progress += len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise TransportClosed(str(exc)) from exc

    async def keepalive(self) -> None:
        return None

    async def aclose(self, code: int = 1000, reason: str = "", *, abort: bool = False) -> None:
        for stream in (self._tx, self._rx):
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await stream.aclose()
