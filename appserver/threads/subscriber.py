"""What the thread layer needs of a subscriber: a queue plus a policy, not a connection."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from appserver.jsonrpc import Outbound

# While a producer waits for a subscriber slow to drain, it looks this often whether
# another one has become hungry (then the slow one gets only STALL_SECONDS, §2.3).
RECHECK_SECONDS = 0.05


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
        no other subscriber is hungry, so waiting delays nobody else (§2.3)."""
        ...

    async def wait_writable(self, *, alone: bool = False, recheck: float = 0.5) -> None:
        """Backpressure for subscribers that apply it (stdio), pacing for a websocket
        that drains (§2.3); returns at once otherwise. With `alone` it may return after
        `recheck` seconds while `needs_wait(alone=True)` still holds: the caller looks
        again."""
        ...


def needs_pace(subscribers: Mapping[int, Subscriber]) -> bool:
    """Whether `pace` has anything to wait for (a producer asks after every event: one
    comparison per subscriber in the common case)."""
    for sub in subscribers.values():  # noqa: SIM110 - no generator per event (hot path)
        if sub.needs_wait(alone=True):
            return True
    return False


async def pace(subscribers: Mapping[int, Subscriber]) -> None:
    """Wait for the subscribers that need it (§2.3). While no other subscriber is
    `hungry` (it could take more), waiting delays nobody, so one slow to drain is waited
    for longer before it counts as stalled (`needs_wait(alone=True)`): a thread's only
    subscriber, or many readers in one busy client. Looked at again every
    RECHECK_SECONDS; `subscribers` may change meanwhile."""
    while True:
        for sub in list(subscribers.values()):
            if not sub.needs_wait(alone=True):
                continue
            if sub.needs_wait():  # draining: waited for by the 0.5 s rule
                await sub.wait_writable()
                break
            # Slow to drain: waited for only while nobody else could take more.
            if not any(other.hungry for other in subscribers.values()):
                await sub.wait_writable(alone=True, recheck=RECHECK_SECONDS)
                break
        else:
            return
