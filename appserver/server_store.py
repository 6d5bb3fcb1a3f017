"""The store a server opens (PROTOCOL.md §8.6): SQLite in the data dir (held under the
data dir's lock), PostgreSQL, or memory. Part of the composition root (server.py)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

import trio

from appserver.datadir import (
    DataDirLock,
    create_data_dir,
    create_private_file,
    lock_data_dir,
    warn_if_shared,
)
from appserver.server_config import ServerConfig
from appserver.store.base import ThreadStore
from appserver.store.errors import StoreOpenError
from appserver.store.memory import MemoryStore
from appserver.store.sqlite import SqliteStore, open_sqlite_store

log = logging.getLogger("appserver.server")

STORE_FILE = "appserver.sqlite3"

__all__ = ["STORE_FILE", "open_store"]


@asynccontextmanager
async def open_store(
    config: ServerConfig,
) -> AsyncIterator[tuple[ThreadStore, DataDirLock | None]]:
    """The store, and the data dir's lock held around it (PROTOCOL.md §8.6): the
    directory is created 0700, locked, and the database pre-created 0600 before SQLite
    opens it."""
    if config.store_url is not None:  # PostgreSQL: the data dir (if any) keeps its lock
        async with _open_postgres(config) as opened:
            yield opened
        return
    if config.data_dir is None:
        memory = MemoryStore()
        try:
            yield memory, None
        finally:
            await memory.aclose()
        return
    data_dir = config.data_dir
    create_data_dir(data_dir)
    lock = await trio.to_thread.run_sync(lock_data_dir, data_dir)
    try:
        warn_if_shared(data_dir)
        path = data_dir / STORE_FILE
        try:
            create_private_file(path)
        except OSError as exc:
            raise StoreOpenError(f"cannot open the store at {path}: {exc}") from exc
        async with open_sqlite_store(path) as sqlite:
            _log_recovered(sqlite)
            yield sqlite, lock
    finally:
        lock.release()


@asynccontextmanager
async def _open_postgres(
    config: ServerConfig,
) -> AsyncIterator[tuple[ThreadStore, DataDirLock | None]]:
    """The PostgreSQL store (docs/operations.md "PostgreSQL"); a data dir, when set, is
    still created and locked (one server per data dir: the URLs appserver-client reads,
    the default unix socket), but holds no database."""
    assert config.store_url is not None
    try:
        from appserver.store.postgres import open_postgres_store  # the `postgresql` extra
    except ImportError as exc:
        raise StoreOpenError(f"postgresql:// store: psycopg is not installed ({exc})") from exc
    lock = None
    if config.data_dir is not None:
        create_data_dir(config.data_dir)
        lock = await trio.to_thread.run_sync(lock_data_dir, config.data_dir)
    try:
        async with open_postgres_store(
            config.store_url,
            node_id=config.node_id,
            pool_max=config.store_pool_max,
            cluster=config.cluster,
        ) as postgres:
            _log_recovered(postgres)
            yield postgres, lock
    finally:
        if lock is not None:
            lock.release()


class _Recovered(Protocol):
    interrupted_at_open: int


def _log_recovered(store: SqliteStore | _Recovered) -> None:
    count = store.interrupted_at_open
    if count:
        log.info(
            "crash recovery: %d turn%s left running by a previous server marked interrupted",
            count,
            "" if count == 1 else "s",
            extra={"event": "crash_recovery", "interrupted_turns": count},
        )
