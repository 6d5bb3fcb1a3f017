"""``PostgresStore``: the ThreadStore on PostgreSQL (psycopg 3, psycopg-pool).

The same contract, layout and cursor guarantees as the SQLite store (sqlite.py): threads,
turns and items are rows; turns and items are ordered by insertion seq; ``put_item``
upserts on (turn, item id); settings, items and errors are JSON text. Concurrency, the
pool and failures: :mod:`._pg_conn`; schema and migrations: :mod:`._pg_schema`;
thread/list: :mod:`._pg_list`; turn and item pages: :mod:`._pg_pages`.

Driver: psycopg 3's sync API in worker threads (as the SQLite store runs sqlite3), not
a trio-native driver: none is maintained for trio (asyncpg and psycopg's async API are
asyncio-only; trio-asyncio would add a second loop), and a store call is one short
transaction on a pooled connection, so a worker thread costs little next to it.

At open (``open_postgres_store``): one direct connection checks the server is reachable
(``connect_timeout``) and migrates; then the pool opens with ``pool_min`` connections;
any turn left ``inProgress`` (by a process that died) becomes ``interrupted``. One
appserver process per database until the cluster (issue 16 step 3) adds thread leases.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import psycopg_pool
import trio

from appserver.store import _pg_lifecycle as lifecycle
from appserver.store._pg_conn import Conn
from appserver.store._pg_events import PgEvents
from appserver.store._pg_list import COLUMNS, list_page, thread_from_row
from appserver.store._pg_pages import item_page, summary_page, turn_page, turn_state
from appserver.store._pg_rows import (
    CONNECT_TIMEOUT_SECONDS,
    DEFAULT_POOL_MAX,
    DEFAULT_POOL_MIN,
    INSERT_SETTINGS_SQL,
    INSERT_THREAD_SQL,
    POOL_WAIT_SECONDS,
    application_name,
    default_node_id,
    describe_url,
    is_postgres_url,
    thread_params,
)
from appserver.store._pg_schema import SCHEMA_VERSION, migrate
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
    "DEFAULT_POOL_MAX",
    "DEFAULT_POOL_MIN",
    "SCHEMA_VERSION",
    "PostgresStore",
    "application_name",
    "default_node_id",
    "describe_url",
    "is_postgres_url",
    "open_postgres_store",
]


class PostgresStore(PgEvents):
    """A ThreadStore in a PostgreSQL database; open it with :func:`open_postgres_store`."""

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        node_id: str | None = None,
        pool_min: int = DEFAULT_POOL_MIN,
        pool_max: int = DEFAULT_POOL_MAX,
        history_retention_seconds: float = DEFAULT_HISTORY_RETENTION_SECONDS,
    ) -> PostgresStore:
        where = describe_url(url)
        name = application_name(node_id or default_node_id())
        pool_max = max(1, pool_max)
        pool_min = max(0, min(pool_min, pool_max))

        def connect() -> PostgresStore:
            try:
                conninfo = psycopg.conninfo.make_conninfo(
                    url, application_name=name, connect_timeout=CONNECT_TIMEOUT_SECONDS
                )
            except psycopg.Error as exc:
                raise StoreOpenError(f"bad PostgreSQL URL {where}: {exc}") from exc
            try:
                with psycopg.connect(conninfo, autocommit=True) as conn:
                    migrate(conn, where, name)
            except psycopg.Error as exc:
                raise StoreOpenError(f"cannot open the store at {where}: {_reason(exc)}") from exc
            pool: psycopg_pool.ConnectionPool[Conn] = psycopg_pool.ConnectionPool(
                conninfo,
                min_size=pool_min,
                max_size=pool_max,
                kwargs={"autocommit": True},
                check=psycopg_pool.ConnectionPool.check_connection,
                timeout=POOL_WAIT_SECONDS,
                reconnect_timeout=CONNECT_TIMEOUT_SECONDS,
                name=name,
                open=False,
            )
            try:
                pool.open(wait=pool_min > 0, timeout=CONNECT_TIMEOUT_SECONDS)
            except psycopg_pool.PoolTimeout as exc:
                pool.close()
                raise StoreOpenError(f"cannot open the store at {where}: {exc}") from exc
            return cls(
                where, pool, pool_max=pool_max, history_retention_seconds=history_retention_seconds
            )

        store = await trio.to_thread.run_sync(connect)
        try:
            store.interrupted_at_open = await store.interrupt_running_turns()
            await store.prune_history()
        except BaseException as exc:
            await store.aclose()
            if isinstance(exc, StoreError) and not isinstance(exc, StoreOpenError):
                raise StoreOpenError(f"cannot open the store at {where}: {exc}") from exc
            raise
        return store

    # -- threads ---------------------------------------------------------------------

    async def create_thread(self, record: ThreadRecord) -> None:
        params, settings = thread_params(record), dump_json(record.settings)

        def write(conn: Conn) -> None:
            if conn.execute(INSERT_THREAD_SQL, params).rowcount == 0:
                raise AlreadyStored(f"thread {record.id} is already stored")
            conn.execute(INSERT_SETTINGS_SQL, (record.id, settings))

        await self._write(write)

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        def read(conn: Conn) -> ThreadRecord | None:
            sql = f"SELECT {COLUMNS} FROM threads t WHERE t.id = %s"
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
            sets.append("name = %s, name_fold = %s")
            params += [name, None if name is None else fold(name)]
        if preview is not _UNSET:
            sets.append("preview = %s, preview_fold = %s")
            params += [preview, fold(preview)]
        if archived is not _UNSET:
            sets.append("archived = %s")
            params.append(bool(archived))
        for column, value in (("cwd", cwd), ("model", model), ("model_provider", model_provider)):
            if value is not _UNSET:
                sets.append(f"{column} = %s")
                params.append(value)
        settings_json = None if settings is _UNSET else dump_json(settings)

        def write(conn: Conn) -> None:
            old = self._updated_at(conn, thread_id)
            if sets:
                conn.execute(
                    f"UPDATE threads SET {', '.join(sets)} WHERE id = %s", (*params, thread_id)
                )
            if settings_json is not None:
                conn.execute(
                    "UPDATE thread_settings SET settings = %s WHERE thread_id = %s",
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
        def write(conn: Conn) -> None:
            old = self._updated_at(conn, thread_id)
            inserted = conn.execute(
                "INSERT INTO turns (thread_id, id, status, started_at_ms) "
                "VALUES (%s, %s, 'inProgress', %s) ON CONFLICT (thread_id, id) DO NOTHING",
                (thread_id, turn_id, started_at_ms),
            )
            if inserted.rowcount == 0:
                raise AlreadyStored(f"turn {turn_id} of thread {thread_id} is already stored")
            if preview is not None:
                conn.execute(
                    "UPDATE threads SET preview = %s, preview_fold = %s WHERE id = %s",
                    (preview, fold(preview), thread_id),
                )
            self._touch(conn, thread_id, old, updated_at, recency_at=updated_at)

        await self._write(write)

    async def put_item(self, thread_id: str, turn_id: str, item: dict[str, Any]) -> None:
        key, kind, body = item_id(item), lifecycle.item_type(item), dump_json(item)

        def write(conn: Conn) -> None:
            turn_seq = self._turn_seq(conn, thread_id, turn_id)
            conn.execute(lifecycle.UPSERT_ITEM_SQL, (turn_seq, key, kind, body))

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

        def write(conn: Conn) -> None:
            turn_seq = self._turn_seq(conn, thread_id, turn_id)
            conn.execute(
                "UPDATE turns SET status = %s, error = %s, completed_at_ms = %s WHERE seq = %s",
                (status, error_json, completed_at_ms, turn_seq),
            )
            self._touch(conn, thread_id, self._updated_at(conn, thread_id), updated_at)

        await self._write(write)

    async def get_turns(self, thread_id: str) -> list[TurnRecord]:
        def read(conn: Conn) -> list[TurnRecord]:
            turns: dict[int, TurnRecord] = {}
            for seq, turn_id, status, error, started, completed, body in conn.execute(
                "SELECT t.seq, t.id, t.status, t.error, t.started_at_ms, t.completed_at_ms, "
                "i.body FROM turns t LEFT JOIN items i ON i.turn_seq = t.seq "
                "WHERE t.thread_id = %s ORDER BY t.seq, i.seq",
                (thread_id,),
            ):
                turn = turns.get(seq)
                if turn is None:
                    turn = turns[seq] = TurnRecord(
                        id=turn_id,
                        thread_id=thread_id,
                        status=status,
                        error=None if error is None else json.loads(error),
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
        def read(conn: Conn) -> LoadState | None:
            row = conn.execute(f"SELECT {COLUMNS} FROM threads t WHERE t.id = %s", (thread_id,))
            found = row.fetchone()
            if found is None:
                return None
            running, last = turn_state(conn, thread_id)
            record = thread_from_row(found)
            return LoadState(record=record, running_turn_ids=running, last_turn_status=last)

        return await self._read(read)

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

    # -- thread lifecycle (SQL: _pg_lifecycle) ---------------------------------------

    async def import_thread(self, record: ThreadRecord, turns: list[TurnRecord]) -> None:
        params, settings = thread_params(record), dump_json(record.settings)

        def write(conn: Conn) -> None:
            if conn.execute(INSERT_THREAD_SQL, params).rowcount == 0:
                raise AlreadyStored(f"thread {record.id} is already stored")
            conn.execute(INSERT_SETTINGS_SQL, (record.id, settings))
            lifecycle.import_turns(conn, record.id, turns)

        await self._write(write)

    async def delete_thread(self, thread_id: str) -> bool:
        def write(conn: Conn) -> bool:
            locked = conn.execute("SELECT 1 FROM threads WHERE id = %s FOR UPDATE", (thread_id,))
            if locked.fetchone() is None:
                return False
            return lifecycle.delete_thread(conn, thread_id)

        return await self._write(write)

    async def revert_thread(
        self, thread_id: str, before_turn_id: str, *, updated_at: int
    ) -> RevertedHistory:
        def write(conn: Conn) -> RevertedHistory:
            old = self._updated_at(conn, thread_id)
            reverted = lifecycle.revert_thread(conn, thread_id, before_turn_id)
            self._touch(conn, thread_id, old, updated_at)
            return reverted

        return await self._write(write)

    async def inject_items(self, thread_id: str, items: list[Any]) -> None:
        def write(conn: Conn) -> None:
            self._updated_at(conn, thread_id)  # locks the row; ThreadNotStored
            lifecycle.inject_items(conn, thread_id, items)

        await self._write(write)

    async def get_injected_items(self, thread_id: str) -> list[InjectedItem]:
        return await self._read(lambda conn: lifecycle.injected_items(conn, thread_id))


def _reason(exc: psycopg.Error) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.asynccontextmanager
async def open_postgres_store(
    url: str,
    *,
    node_id: str | None = None,
    pool_min: int = DEFAULT_POOL_MIN,
    pool_max: int = DEFAULT_POOL_MAX,
    history_retention_seconds: float = DEFAULT_HISTORY_RETENTION_SECONDS,
) -> AsyncIterator[PostgresStore]:
    """Open the store in the database at ``url`` (``postgresql://...``), migrating it
    as needed, and close it on exit. Raises :class:`StoreOpenError` (naming the URL
    without its password) for a bad URL, an unreachable server, refused credentials or
    too new a schema."""
    store = await PostgresStore.open(
        url,
        node_id=node_id,
        pool_min=pool_min,
        pool_max=pool_max,
        history_retention_seconds=history_retention_seconds,
    )
    try:
        yield store
    finally:
        await store.aclose()
