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

thread/list: keyset pages with cursors stable under updates, see :mod:`._sqlite_list`;
turn and item pages: :mod:`._sqlite_pages`.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import trio

from appserver.store import _sqlite_lifecycle as lifecycle
from appserver.store._schema import SCHEMA_VERSION, migrate
from appserver.store._sqlite_conn import set_busy_timeout, store_error
from appserver.store._sqlite_events import SqliteEvents
from appserver.store._sqlite_list import COLUMNS, list_page, thread_from_row
from appserver.store._sqlite_pages import item_page, summary_page, turn_page, turn_state
from appserver.store._sqlite_rows import (
    INSERT_SETTINGS_SQL,
    INSERT_THREAD_SQL,
    connect_db,
    thread_params,
)
from appserver.store.base import (
    _UNSET,
    InjectedItem,
    ListQuery,
    RevertedHistory,
    SortDirection,
    StoreError,
    ThreadPage,
    ThreadRecord,
    TurnRecord,
    TurnStatus,
)
from appserver.store.cursor import (
    DEFAULT_HISTORY_RETENTION_SECONDS,
    decode_cursor,
    dump_json,
    fold,
    item_id,
)
from appserver.store.errors import AlreadyStored, StoreOpenError
from appserver.store.pages import ItemPage, LoadState, TurnPage, decode_position

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


class SqliteStore(SqliteEvents):
    """A ThreadStore in an SQLite file; open it with :func:`open_sqlite_store`."""

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

    # -- threads ---------------------------------------------------------------------

    async def create_thread(self, record: ThreadRecord) -> None:
        params = thread_params(record)

        settings = dump_json(record.settings)

        def write(conn: sqlite3.Connection) -> None:
            if conn.execute(INSERT_THREAD_SQL, params).rowcount == 0:
                raise AlreadyStored(f"thread {record.id} is already stored")
            conn.execute(INSERT_SETTINGS_SQL, (record.id, settings))

        await self._write(write)

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        def read(conn: sqlite3.Connection) -> ThreadRecord | None:
            sql = f"SELECT {COLUMNS} FROM threads t WHERE t.id = ?"
            row = conn.execute(sql, (thread_id,)).fetchone()
            return None if row is None else thread_from_row(row)

        return await self._read(read)

    async def update_thread(
        self,
        thread_id: str,
        *,
        name: str | None = _UNSET,
        preview: str = _UNSET,
        updated_at: int = _UNSET,
        archived: bool = _UNSET,
        settings: dict[str, Any] = _UNSET,
        cwd: str = _UNSET,
        model: str = _UNSET,
        model_provider: str = _UNSET,
    ) -> None:
        sets: list[str] = []
        params: list[Any] = []
        if name is not _UNSET:
            sets.append("name = ?, name_fold = ?")
            params += [name, None if name is None else fold(name)]
        if preview is not _UNSET:
            sets.append("preview = ?, preview_fold = ?")
            params += [preview, fold(preview)]
        if archived is not _UNSET:
            sets.append("archived = ?")
            params.append(int(archived))
        for column, value in (("cwd", cwd), ("model", model), ("model_provider", model_provider)):
            if value is not _UNSET:
                sets.append(f"{column} = ?")
                params.append(value)
        settings_json = None if settings is _UNSET else dump_json(settings)

        def write(conn: sqlite3.Connection) -> None:
            old = self._updated_at(conn, thread_id)
            if sets:
                sql = f"UPDATE threads SET {', '.join(sets)} WHERE id = ?"
                conn.execute(sql, (*params, thread_id))
            if settings_json is not None:
                conn.execute(
                    "UPDATE thread_settings SET settings = ? WHERE thread_id = ?",
                    (settings_json, thread_id),
                )
            if updated_at is not _UNSET:
                self._touch(conn, thread_id, old, updated_at)

        await self._write(write)

    async def list_page(self, query: ListQuery) -> ThreadPage:
        cursor = None if query.cursor is None else decode_cursor(query.cursor, query.sort_key)
        return await self._read(lambda conn: list_page(conn, query, cursor))

    async def list_threads(self, query: ListQuery) -> tuple[list[ThreadRecord], str | None]:
        page = await self.list_page(query)
        return page.threads, page.next_cursor

    # -- turns and items -------------------------------------------------------------

    async def start_turn(
        self,
        thread_id: str,
        turn_id: str,
        *,
        updated_at: int,
        preview: str | None = None,
        started_at_ms: int | None = None,
    ) -> None:
        def write(conn: sqlite3.Connection) -> None:
            old = self._updated_at(conn, thread_id)
            inserted = conn.execute(
                "INSERT INTO turns (thread_id, id, status, started_at_ms) "
                "VALUES (?, ?, 'inProgress', ?) ON CONFLICT (thread_id, id) DO NOTHING",
                (thread_id, turn_id, started_at_ms),
            )
            if inserted.rowcount == 0:
                raise AlreadyStored(f"turn {turn_id} of thread {thread_id} is already stored")
            if preview is not None:
                conn.execute(
                    "UPDATE threads SET preview = ?, preview_fold = ? WHERE id = ?",
                    (preview, fold(preview), thread_id),
                )
            self._touch(conn, thread_id, old, updated_at, recency_at=updated_at)

        await self._write(write)

    async def put_item(self, thread_id: str, turn_id: str, item: dict[str, Any]) -> None:
        key = item_id(item)
        body = dump_json(item)

        def write(conn: sqlite3.Connection) -> None:
            turn_seq = self._turn_seq(conn, thread_id, turn_id)
            conn.execute(
                "INSERT INTO items (turn_seq, id, body) VALUES (?, ?, ?) "
                "ON CONFLICT (turn_seq, id) DO UPDATE SET body = excluded.body",
                (turn_seq, key, body),
            )

        await self._write(write)

    async def finish_turn(
        self,
        thread_id: str,
        turn_id: str,
        *,
        status: TurnStatus,
        error: dict[str, Any] | None,
        updated_at: int,
        completed_at_ms: int | None = None,
    ) -> None:
        error_json = None if error is None else dump_json(error)

        def write(conn: sqlite3.Connection) -> None:
            turn_seq = self._turn_seq(conn, thread_id, turn_id)
            conn.execute(
                "UPDATE turns SET status = ?, error = ?, completed_at_ms = ? WHERE seq = ?",
                (status, error_json, completed_at_ms, turn_seq),
            )
            self._touch(conn, thread_id, self._updated_at(conn, thread_id), updated_at)

        await self._write(write)

    async def get_turns(self, thread_id: str) -> list[TurnRecord]:
        def read(conn: sqlite3.Connection) -> list[TurnRecord]:
            turns: dict[int, TurnRecord] = {}
            for seq, turn_id, status, error, started, completed, body in conn.execute(
                "SELECT t.seq, t.id, t.status, t.error, t.started_at_ms, t.completed_at_ms, "
                "i.body FROM turns t "
                "LEFT JOIN items i ON i.turn_seq = t.seq "
                "WHERE t.thread_id = ? ORDER BY t.seq, i.seq",
                (thread_id,),
            ):
                turn = turns.get(seq)
                if turn is None:
                    error_value = None if error is None else json.loads(error)
                    turn = turns[seq] = TurnRecord(
                        id=turn_id,
                        thread_id=thread_id,
                        status=status,
                        error=error_value,
                        started_at_ms=started,
                        completed_at_ms=completed,
                    )
                if body is not None:
                    turn.items.append(json.loads(body))
            return list(turns.values())

        return await self._read(read)

    async def list_turns(
        self,
        thread_id: str,
        *,
        limit: int,
        cursor: str | None = None,
        direction: SortDirection = "desc",
        with_items: bool = True,
    ) -> TurnPage:
        at = None if cursor is None else decode_position(cursor, "turns", thread_id)
        desc, n = direction == "desc", max(1, limit)
        return await self._read(lambda conn: turn_page(conn, thread_id, at, desc, n, with_items))

    async def list_turn_summaries(
        self,
        thread_id: str,
        *,
        limit: int,
        cursor: str | None = None,
        direction: SortDirection = "desc",
    ) -> TurnPage:
        at = None if cursor is None else decode_position(cursor, "turns", thread_id)
        desc, n = direction == "desc", max(1, limit)
        return await self._read(lambda conn: summary_page(conn, thread_id, at, desc, n))

    async def load_state(self, thread_id: str) -> LoadState | None:
        record = await self.get_thread(thread_id)
        if record is None:
            return None
        running, last = await self._read(lambda conn: turn_state(conn, thread_id))
        return LoadState(record=record, running_turn_ids=running, last_turn_status=last)

    async def list_items(
        self,
        thread_id: str,
        *,
        limit: int,
        cursor: str | None = None,
        direction: SortDirection = "asc",
        turn_id: str | None = None,
        after_item: str | None = None,
    ) -> ItemPage:
        at = None if cursor is None else decode_position(cursor, "items", thread_id)
        desc, n = direction == "desc", max(1, limit)
        return await self._read(
            lambda conn: item_page(conn, thread_id, at, desc, n, turn_id, after_item)
        )

    # -- thread lifecycle (SQL: _sqlite_lifecycle) -----------------------------------

    async def import_thread(self, record: ThreadRecord, turns: list[TurnRecord]) -> None:
        params, settings = thread_params(record), dump_json(record.settings)

        def write(conn: sqlite3.Connection) -> None:
            if conn.execute(INSERT_THREAD_SQL, params).rowcount == 0:
                raise AlreadyStored(f"thread {record.id} is already stored")
            conn.execute(INSERT_SETTINGS_SQL, (record.id, settings))
            lifecycle.import_turns(conn, record.id, turns)

        await self._write(write)

    async def delete_thread(self, thread_id: str) -> bool:
        return await self._write(lambda conn: lifecycle.delete_thread(conn, thread_id))

    async def revert_thread(
        self, thread_id: str, before_turn_id: str, *, updated_at: int
    ) -> RevertedHistory:
        def write(conn: sqlite3.Connection) -> RevertedHistory:
            reverted = lifecycle.revert_thread(conn, thread_id, before_turn_id)
            self._touch(conn, thread_id, self._updated_at(conn, thread_id), updated_at)
            return reverted

        return await self._write(write)

    async def inject_items(self, thread_id: str, items: list[Any]) -> None:
        await self._write(lambda conn: lifecycle.inject_items(conn, thread_id, items))

    async def get_injected_items(self, thread_id: str) -> list[InjectedItem]:
        return await self._read(lambda conn: lifecycle.injected_items(conn, thread_id))


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
