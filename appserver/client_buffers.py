"""The Python client's buffers (client.py): the notifications and server requests that
arrived and were not taken yet, in arrival order and within `BufferLimits`, and how the
client's waits take from them (docs/embedding.md, "Bounded buffers")."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from appserver.client_errors import ClientOverflow, ServerRequest
from appserver.client_limits import BufferLimits

_UNKNOWN = (-1, 0)

Where = Callable[[Any], bool] | None


class Buffers:
    def __init__(self, limits: BufferLimits) -> None:
        self.limits = limits
        self.notifications: deque[dict[str, Any]] = deque()
        self.requests: deque[ServerRequest] = deque()
        # Arrival number and size of each buffered message (by id()), so `async for` can
        # merge the two buffers back into the order the server sent them in, a wait can
        # tell what it has looked at, and the buffered bytes are known.
        self._arrival: dict[int, tuple[int, int]] = {}
        self._arrivals = itertools.count()
        self.bytes = 0
        self.overflow: tuple[str, int, int, int] | None = None

    def count(self) -> int:
        return len(self.notifications) + len(self.requests)

    def add(self, msg: dict[str, Any], size: int) -> bool:
        """Buffer one notification or server request; False (and `overflow` set) when
        it would pass a bound."""
        count = self.count()
        if count + 1 > self.limits.messages:
            self.overflow = ("messages", self.limits.messages, count, self.bytes)
        elif self.bytes + size > self.limits.bytes:
            self.overflow = ("bytes", self.limits.bytes, count, self.bytes)
        if self.overflow is not None:
            return False
        buffered: dict[str, Any] | ServerRequest = msg
        if "method" in msg and "id" in msg:
            buffered = ServerRequest(msg["id"], msg["method"], msg.get("params"))
            self.requests.append(buffered)
        else:  # a notification (or an unmatched response: visible to tests)
            self.notifications.append(msg)
        self._arrival[id(buffered)] = (next(self._arrivals), size)
        self.bytes += size
        return True

    def half_full(self) -> bool:
        return self.count() * 2 > self.limits.messages or self.bytes * 2 > self.limits.bytes

    def overflow_error(self) -> ClientOverflow:
        assert self.overflow is not None
        return ClientOverflow(*self.overflow)

    def _taken(self, message: object) -> None:
        _, size = self._arrival.pop(id(message), (0, 0))
        self.bytes -= size

    def _arrival_no(self, message: object) -> int:
        return self._arrival.get(id(message), _UNKNOWN)[0]

    def _unseen(self, buf: Sequence[Any], seen: int) -> int:
        """The index of the first message of `buf` that arrived after arrival `seen`
        (buffers keep arrival order, so the unseen ones are a tail: found from the end)."""
        start = len(buf)
        while start and self._arrival_no(buf[start - 1]) > seen:
            start -= 1
        return start

    def take_notification(
        self, method: str | None, where: Where, seen: int
    ) -> tuple[dict[str, Any] | None, int]:
        """The first notification matching `method` and `where(params)` among those
        that arrived after `seen`, and the new `seen`: a wait looks at each message once."""
        buf = self.notifications
        if method is None and where is None:
            if not buf:
                return None, seen
            self._taken(buf[0])
            return buf.popleft(), seen
        for i in range(self._unseen(buf, seen), len(buf)):
            msg = buf[i]
            if (method is None or msg.get("method") == method) and (
                where is None or where(msg.get("params") or {})
            ):
                del buf[i]
                self._taken(msg)
                return msg, seen
        return None, self._arrival_no(buf[-1]) if buf else seen

    def take_request(
        self, method: str | None, where: Where, seen: int
    ) -> tuple[ServerRequest | None, int]:
        buf = self.requests
        for i in range(self._unseen(buf, seen), len(buf)):
            req = buf[i]
            if (method is None or req.method == method) and (
                where is None or where(req.params or {})
            ):
                del buf[i]
                self._taken(req)
                return req, seen
        return None, self._arrival_no(buf[-1]) if buf else seen

    def take_next(self) -> dict[str, Any] | ServerRequest | None:
        """The earliest message of either buffer."""
        notes, requests = self.notifications, self.requests
        if not notes and not requests:
            return None
        first: dict[str, Any] | ServerRequest
        if not requests or (notes and self._arrival_no(notes[0]) < self._arrival_no(requests[0])):
            first = notes.popleft()
        else:
            first = requests.popleft()
        self._taken(first)
        return first

    def drain_notifications(self) -> list[dict[str, Any]]:
        out = list(self.notifications)
        self.notifications.clear()
        for msg in out:
            self._taken(msg)
        return out
