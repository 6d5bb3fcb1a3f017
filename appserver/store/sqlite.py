"""``SqliteStore``: the ThreadStore in one SQLite file (WAL, ``synchronous=NORMAL``).

Concurrency (the plumbing is in ``_sqlite_conn``): every SQLite call runs in a worker
thread (``trio.to_thread.run_sync``). One writer connection, serialized by a
``CapacityLimiter(1)``, runs each write as one ``BEGIN IMMEDIATE`` transaction; a
separate read-only connection (own limiter) serves reads, each in one read transaction,
so a read never waits for a write. A write that has started in its thread always
finishes (cancellation only stops it from starting).

Layout (``_schema``): threads, turns and items are rows; turns are ordered by their
insertion seq within the thread, items by insertion seq within the turn, and
``put_item`` upserts on (turn, item id), so a rewritten item keeps its place. Settings,
items and errors are JSON text; settings sit in their own table so thread rows stay
small. At open any turn left ``inProgress`` (by a process that died) becomes
``interrupted``.

Failures (PROTOCOL.md §8.6). A write waits up to ``BUSY_TIMEOUT_SECONDS`` for a lock held
by another connection. SQLite's operational failures (locked past that, disk full, I/O
errors, a file that went away) raise :class:`StoreUnavailable` with SQLite's reason; the
transaction was rolled back, so nothing of it is stored and it may be tried again.
Misuse (a constraint, a bad parameter) stays a plain ``StoreError``: a bug, not an outage.

The ThreadStore methods, thread/list (keyset pages with cursors stable under updates),
turn and item pages, lifecycle writes and the event log are written once for both SQL
stores (``_sql_store``, ``_sql_list``, ``_sql_pages``, ``_sql_lifecycle``,
``_sql_events``); this store's SQL text is in ``_sqlite_rows`` and the ``_sqlite_*``
modules of each area.
"""

from __future__ import annotations

import contextlib
import pathlib
import sqlite3
from collections.abc import AsyncIterator

import trio

from appserver.store._schema import SCHEMA_VERSION, migrate
from appserver.store._sql_events import SqlEvents
from appserver.store._sql_store import SqlStore
from appserver.store._sqlite_conn import SqliteConnections, set_busy_timeout, store_error
from appserver.store._sqlite_events import SQL as EVENTS_SQL
from appserver.store._sqlite_rows import (
    INSERT_SETTINGS_SQL,
    INSERT_THREAD_SQL,
    SQL,
    connect_db,
    thread_params,
)
from appserver.store.base import StoreError
from appserver.store.cursor import DEFAULT_HISTORY_RETENTION_SECONDS
from appserver.store.errors import StoreOpenError

__all__ = [
    "BUSY_TIMEOUT_SECONDS",
    "INSERT_SETTINGS_SQL",
    "INSERT_THREAD_SQL",
    "SCHEMA_VERSION",
    "SqliteStore",
    "open_sqlite_store",
    "store_error",
    "thread_params",
]

#: How long a write waits for a lock another connection holds before it fails
#: (``StoreUnavailable``: "database is locked").
BUSY_TIMEOUT_SECONDS = 5.0


class SqliteStore(SqliteConnections, SqlEvents, SqlStore):
    """A ThreadStore in an SQLite file; open it with :func:`open_sqlite_store`."""

    SQL = SQL
    EVENTS_SQL = EVENTS_SQL

    @classmethod
    async def open(
        cls,
        path: pathlib.Path,
        *,
        history_retention_seconds: float = DEFAULT_HISTORY_RETENTION_SECONDS,
        busy_timeout: float | None = None,
    ) -> SqliteStore:
        """Open (creating and migrating if needed) the store at ``path``; prefer
        :func:`open_sqlite_store`, which also closes it. ``busy_timeout`` defaults to
        ``BUSY_TIMEOUT_SECONDS``."""
        path = pathlib.Path(path)
        wait = BUSY_TIMEOUT_SECONDS if busy_timeout is None else busy_timeout

        def connect() -> SqliteStore:
            writer = connect_db(path, read_only=False)
            try:
                set_busy_timeout(writer, wait)
                migrate(writer, path)
                reader = connect_db(path, read_only=True)
                set_busy_timeout(reader, wait)
            except BaseException:
                writer.close()
                raise
            return cls(path, writer, reader, history_retention_seconds=history_retention_seconds)

        try:
            store = await trio.to_thread.run_sync(connect)
        except (sqlite3.Error, OSError) as exc:
            raise StoreOpenError(f"cannot open the store at {path}: {exc}") from exc
        try:
            store.interrupted_at_open = await store.interrupt_running_turns()
            await store.prune_history()
        except BaseException as exc:
            await store.aclose()
            if isinstance(exc, StoreError) and not isinstance(exc, StoreOpenError):
                raise StoreOpenError(f"cannot open the store at {path}: {exc}") from exc
            raise
        return store


@contextlib.asynccontextmanager
async def open_sqlite_store(
    path: pathlib.Path,
    *,
    history_retention_seconds: float = DEFAULT_HISTORY_RETENTION_SECONDS,
    busy_timeout: float | None = None,
) -> AsyncIterator[SqliteStore]:
    """Open the store at ``path`` (the full file path, e.g. DATA_DIR/appserver.sqlite3),
    creating and migrating it as needed, and close it on exit.

    Raises :class:`~appserver.store.errors.StoreOpenError` naming the path if the file
    cannot be opened (missing or unwritable directory, not a database, too new a schema).
    """
    store = await SqliteStore.open(
        path, history_retention_seconds=history_retention_seconds, busy_timeout=busy_timeout
    )
    try:
        yield store
    finally:
        await store.aclose()
