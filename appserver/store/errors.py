"""Store errors beyond the three in :mod:`appserver.store.base` (all are ``StoreError``)."""

from __future__ import annotations

from appserver.store.base import StoreError

__all__ = [
    "AlreadyStored",
    "LeaseLost",
    "StoreClosed",
    "StoreOpenError",
    "StoreUnavailable",
    "TurnNotStored",
]


class StoreOpenError(StoreError):
    """The store file could not be opened, created or migrated (the message names the path)."""


class StoreUnavailable(StoreError):
    """A read or write the store could not carry out now: the disk is full, the database
    is locked past the busy timeout, an I/O error, a lost connection (PROTOCOL.md §8.6).
    Nothing of a failed write is stored (a transaction is all or nothing), so the same
    write may simply be tried again; the message is the store's reason."""

    @property
    def reason(self) -> str:
        return str(self)


class StoreClosed(StoreUnavailable):
    """The store was used after ``aclose()``."""


class AlreadyStored(StoreError):
    """``create_thread`` / ``start_turn`` with an id the store already holds."""


class TurnNotStored(StoreError):
    """``put_item`` / ``finish_turn`` named a turn the thread does not hold."""


class LeaseLost(StoreError):
    """A write of a fenced thread (``PostgresStore.fence``) found the thread's lease row
    missing or held by another node or epoch: another node owns the thread now. Final:
    nothing of the write is stored, and trying it again cannot succeed (not a
    ``StoreUnavailable``: no retry policy may take it for an outage)."""

    def __init__(self, thread_id: str, node_id: str | None, epoch: int | None) -> None:
        held = "by nobody" if node_id is None else f"by {node_id} epoch {epoch}"
        super().__init__(f"lease of thread {thread_id} lost: held {held}")
        self.thread_id = thread_id
        #: the lease row's holder and epoch when the write was refused (None: no row)
        self.node_id = node_id
        self.epoch = epoch
