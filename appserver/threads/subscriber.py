"""What the thread layer needs of a subscriber: a queue plus a policy, not a connection."""

from __future__ import annotations

from typing import Protocol

from appserver.jsonrpc import Outbound


class Subscriber(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def closed(self) -> bool: ...

    def wants(self, method: str) -> bool:
        """Whether notification `method` may be delivered (initialized, not opted out)."""
        ...

    def send_nowait(self, text: str | Outbound) -> bool:
        """Queue one encoded message without waiting. A subscriber that cannot keep up
        drops itself (slow consumer) and returns False."""
        ...

    @property
    def hungry(self) -> bool:
        """Would take more now (nothing queued, nothing being written)."""
        ...

    def needs_wait(self, *, alone: bool = False) -> bool:
        """Whether `wait_writable` would wait now (a cheap synchronous check). `alone`:
        the producer feeds no other subscriber, so waiting delays nobody else (§2.3)."""
        ...

    async def wait_writable(self, *, alone: bool = False, recheck: float = 0.5) -> None:
        """Backpressure for subscribers that apply it (stdio), pacing for a websocket
        that drains (§2.3); returns at once otherwise. With `alone` it may return after
        `recheck` seconds while `needs_wait(alone=True)` still holds: the caller looks
        again."""
        ...
