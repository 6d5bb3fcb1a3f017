"""Which node runs a thread: the narrow interface between the registry and a cluster
(appserver/cluster/). A single server owns every thread it loads (`SingleNode`, no-ops);
a cluster node takes a lease first and may find the thread owned elsewhere."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from appserver.store.errors import LeaseLost

if TYPE_CHECKING:
    from appserver.threads.loaded import LoadedThread


__all__ = ["LeaseLost", "OwnedElsewhere", "Ownership", "SingleNode"]


class OwnedElsewhere(Exception):
    """The thread runs on another node (its lease is live there)."""

    def __init__(self, thread_id: str, node_id: str) -> None:
        super().__init__(f"thread {thread_id} is owned by node {node_id}")
        self.thread_id = thread_id
        self.node_id = node_id


class Ownership(Protocol):
    async def acquire(self, thread_id: str, *, new: bool = False) -> None:
        """Before the thread is loaded (or created, `new`): make this node its owner, or
        raise OwnedElsewhere."""
        ...

    async def release(self, thread: LoadedThread) -> None:
        """After the thread closed here (its last write done): give its ownership up."""
        ...

    def lost(self, thread: LoadedThread) -> None:
        """A write of the thread was refused: another node owns it now (store LeaseLost)."""
        ...


class SingleNode:
    """One server: every thread is owned here; nothing to do."""

    async def acquire(self, thread_id: str, *, new: bool = False) -> None:
        return None

    async def release(self, thread: LoadedThread) -> None:
        return None

    def lost(self, thread: LoadedThread) -> None:
        return None
