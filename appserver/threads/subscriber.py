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

    def needs_wait(self) -> bool:
        """Whether `wait_writable` would wait now (a cheap synchronous check)."""
        ...

    async def wait_writable(self) -> None:
        """Backpressure for subscribers that apply it (stdio); returns at once otherwise."""
        ...
