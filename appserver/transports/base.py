"""What a transport is: something that moves whole text frames in both directions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from appserver.jsonrpc.codec import Outbound
from appserver.protocol.errors import AppServerError


class TransportClosed(AppServerError):
    """The peer went away (EOF, closed socket, reset, ping timeout, ...). `code` is the
    websocket close code when there was one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class FrameTooLarge(AppServerError):
    """A frame over the size limit was discarded; the transport is still usable."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"frame of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class Transport(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def peer(self) -> str:
        """Who is on the other end, for logs: `host:port`, or the transport kind."""
        ...

    @property
    def applies_backpressure(self) -> bool:
        """True: producers wait for this peer (stdio). False: a full outbound queue makes
        the peer a slow consumer and it is dropped (websocket)."""
        ...

    @property
    def half_close(self) -> bool:
        """True when the write side still works after the read side ended (stdio)."""
        ...

    async def receive(self) -> str | bytes:
        """The next frame: text, or raw bytes that are not valid UTF-8 (for the codec to
        answer with a parse error). Raises TransportClosed or FrameTooLarge."""
        ...

    async def send_all(self, frames: Sequence[Outbound]) -> None:
        """Write frames in order. Raises TransportClosed."""
        ...

    @property
    def progress(self) -> int:
        """How much has been written so far (bytes, or frames), counted as it goes: a
        write in progress that moves this is not stalled (Connection.stalled)."""
        ...

    async def keepalive(self) -> None:
        """Runs for the life of the connection; returns or raises TransportClosed when the
        peer is found dead. Transports without liveness checks return at once."""
        ...

    async def aclose(self, code: int = 1000, reason: str = "", *, abort: bool = False) -> None:
        """Close; `abort` means a frame was cut off, so skip any closing handshake."""
        ...
