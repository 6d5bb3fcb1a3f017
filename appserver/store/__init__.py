"""Thread storage: the ThreadStore protocol, an in-memory store and the SQLite store
(the PostgreSQL store, which needs the ``postgresql`` extra, is appserver.store.postgres)."""

from __future__ import annotations

from appserver.store.base import (
    InvalidCursor,
    ListQuery,
    SortDirection,
    SortKey,
    StoreError,
    ThreadNotStored,
    ThreadPage,
    ThreadRecord,
    ThreadStore,
    TurnRecord,
    TurnStatus,
)
from appserver.store.errors import (
    AlreadyStored,
    LeaseLost,
    StoreClosed,
    StoreOpenError,
    TurnNotStored,
)
from appserver.store.memory import MemoryStore
from appserver.store.sqlite import SCHEMA_VERSION, SqliteStore, open_sqlite_store

__all__ = [
    "SCHEMA_VERSION",
    "AlreadyStored",
    "InvalidCursor",
    "LeaseLost",
    "ListQuery",
    "MemoryStore",
    "SortDirection",
    "SortKey",
    "SqliteStore",
    "StoreClosed",
    "StoreError",
    "StoreOpenError",
    "ThreadNotStored",
    "ThreadPage",
    "ThreadRecord",
    "ThreadStore",
    "TurnNotStored",
    "TurnRecord",
    "TurnStatus",
    "open_sqlite_store",
]
