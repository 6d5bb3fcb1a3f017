"""The ThreadStore methods the SQLite and PostgreSQL stores share, written once over the
store's dialect (``SqlStore.SQL``: its SQL text and driver calls) and its plumbing (the
connections class it is mixed into: ``_write`` / ``_read`` run one transaction in a
worker thread; ``_updated_at`` / ``_turn_seq`` find, and where the database needs it
lock, the thread row; ``_touch`` moves the sort keys and records their history)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import attrs

from appserver.store import _sql_lifecycle as lifecycle
from appserver.store._sql_common import SqlConn, thread_from_row, thread_params, turn_from_row
from appserver.store._sql_list import ListSql, list_page
from appserver.store._sql_pages import PagesSql, item_page, summary_page, turn_page, turn_state
from appserver.store.base import (
    _UNSET,
    InjectedItem,
    ListQuery,
    RevertedHistory,
    SortDirection,
    ThreadPage,
    ThreadRecord,
    TurnRecord,
    TurnStatus,
)
from appserver.store.cursor import decode_cursor, dump_json, fold
from appserver.store.errors import AlreadyStored
from appserver.store.pages import ItemPage, LoadState, TurnPage, decode_position

__all__ = ["SqlStore", "StoreSql"]

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class StoreSql:
    """A dialect: the statements of the store methods, and those of each area."""

    #: the placeholder ("?" or "%s")
    p: str
    insert_thread: str
    insert_settings: str
    #: (thread_id) -> COLUMNS
    get_thread: str
    update_settings: str
    #: (thread_id, turn_id, started_at_ms); no row when the turn exists
    insert_turn: str
    set_preview: str
    finish_turn: str
    #: (thread_id) -> turn seq, id, status, error, started, completed, item body
    get_turns: str
    #: (thread_id) -> a row when the thread is stored, locking it; None: no lock needed
    lock_thread: str | None
    pages: PagesSql
    list: ListSql
    lifecycle: lifecycle.LifecycleSql


class SqlStore:
    """The shared ThreadStore methods; mixed in after the store's connections class."""

    SQL: ClassVar[StoreSql]

    # -- the plumbing the connections class provides ---------------------------------

    async def _write(self, fn: Callable[[Any], T], thread_id: str | None = None) -> T:
        raise NotImplementedError

    async def _read(self, fn: Callable[[Any], T]) -> T:
        raise NotImplementedError

    def _updated_at(self, conn: Any, thread_id: str) -> int:
        raise NotImplementedError

    def _turn_seq(self, conn: Any, thread_id: str, turn_id: str) -> int:
        raise NotImplementedError

    def _touch(
        self, conn: Any, thread_id: str, old: int, new: int, *, recency_at: int | None = None
    ) -> None:
        raise NotImplementedError

    # -- threads ---------------------------------------------------------------------

    def _insert_thread(self, conn: SqlConn, record: ThreadRecord, settings: str) -> None:
        if conn.execute(self.SQL.insert_thread, thread_params(record)).rowcount == 0:
            raise AlreadyStored(f"thread {record.id} is already stored")
        conn.execute(self.SQL.insert_settings, (record.id, settings))

    async def create_thread(self, record: ThreadRecord) -> None:
        settings = dump_json(record.settings)
        await self._write(lambda conn: self._insert_thread(conn, record, settings), record.id)

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        sql = self.SQL.get_thread

        def read(conn: SqlConn) -> ThreadRecord | None:
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
        p = self.SQL.p
        sets: list[str] = []
        params: list[Any] = []
        if name is not _UNSET:
            sets.append(f"name = {p}, name_fold = {p}")
            params += [name, None if name is None else fold(name)]
        if preview is not _UNSET:
            sets.append(f"preview = {p}, preview_fold = {p}")
            params += [preview, fold(preview)]
        if archived is not _UNSET:
            sets.append(f"archived = {p}")
            params.append(bool(archived))
        for column, value in (("cwd", cwd), ("model", model), ("model_provider", model_provider)):
            if value is not _UNSET:
                sets.append(f"{column} = {p}")
                params.append(value)
        settings_json = None if settings is _UNSET else dump_json(settings)
        update = f"UPDATE threads SET {', '.join(sets)} WHERE id = {p}"

        def write(conn: SqlConn) -> None:
            old = self._updated_at(conn, thread_id)
            if sets:
                conn.execute(update, (*params, thread_id))
            if settings_json is not None:
                conn.execute(self.SQL.update_settings, (settings_json, thread_id))
            if updated_at is not _UNSET:
                self._touch(conn, thread_id, old, updated_at)

        await self._write(write, thread_id)

    async def list_page(self, query: ListQuery) -> ThreadPage:
        cursor = None if query.cursor is None else decode_cursor(query.cursor, query.sort_key)
        return await self._read(lambda conn: list_page(conn, self.SQL.list, query, cursor))

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
        sql = self.SQL

        def write(conn: SqlConn) -> None:
            old = self._updated_at(conn, thread_id)
            inserted = conn.execute(sql.insert_turn, (thread_id, turn_id, started_at_ms))
            if inserted.rowcount == 0:
                raise AlreadyStored(f"turn {turn_id} of thread {thread_id} is already stored")
            if preview is not None:
                conn.execute(sql.set_preview, (preview, fold(preview), thread_id))
            self._touch(conn, thread_id, old, updated_at, recency_at=updated_at)

        await self._write(write, thread_id)

    async def put_item(self, thread_id: str, turn_id: str, item: dict[str, Any]) -> None:
        sql = self.SQL.lifecycle
        values = lifecycle.item_params(sql, 0, item)[1:]  # all but the turn's seq

        def write(conn: SqlConn) -> None:
            conn.execute(sql.upsert_item, (self._turn_seq(conn, thread_id, turn_id), *values))

        await self._write(write, thread_id)

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
        sql = self.SQL.finish_turn

        def write(conn: SqlConn) -> None:
            turn_seq = self._turn_seq(conn, thread_id, turn_id)
            conn.execute(sql, (status, error_json, completed_at_ms, turn_seq))
            self._touch(conn, thread_id, self._updated_at(conn, thread_id), updated_at)

        await self._write(write, thread_id)

    async def get_turns(self, thread_id: str) -> list[TurnRecord]:
        sql = self.SQL.get_turns

        def read(conn: SqlConn) -> list[TurnRecord]:
            turns: dict[int, TurnRecord] = {}
            for seq, turn_id, status, error, started, completed, body in conn.execute(
                sql, (thread_id,)
            ):
                turn = turns.get(seq)
                if turn is None:
                    turn = turns[seq] = turn_from_row(
                        thread_id, turn_id, status, error, started, completed
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
        desc, n, sql = direction == "desc", max(1, limit), self.SQL.pages
        return await self._read(
            lambda conn: turn_page(conn, sql, thread_id, at, desc, n, with_items)
        )

    async def list_turn_summaries(
        self,
        thread_id: str,
        *,
        limit: int,
        cursor: str | None = None,
        direction: SortDirection = "desc",
    ) -> TurnPage:
        at = None if cursor is None else decode_position(cursor, "turns", thread_id)
        desc, n, sql = direction == "desc", max(1, limit), self.SQL.pages
        return await self._read(lambda conn: summary_page(conn, sql, thread_id, at, desc, n))

    async def load_state(self, thread_id: str) -> LoadState | None:
        sql = self.SQL

        def read(conn: SqlConn) -> LoadState | None:
            found = conn.execute(sql.get_thread, (thread_id,)).fetchone()
            if found is None:
                return None
            running, last = turn_state(conn, sql.pages, thread_id)
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
        desc, n, sql = direction == "desc", max(1, limit), self.SQL.pages
        return await self._read(
            lambda conn: item_page(conn, sql, thread_id, at, desc, n, turn_id, after_item)
        )

    # -- thread lifecycle (_sql_lifecycle) -------------------------------------------

    async def import_thread(self, record: ThreadRecord, turns: list[TurnRecord]) -> None:
        settings, sql = dump_json(record.settings), self.SQL

        def write(conn: SqlConn) -> None:
            self._insert_thread(conn, record, settings)
            lifecycle.import_turns(conn, sql.lifecycle, record.id, turns)

        await self._write(write, record.id)

    async def delete_thread(self, thread_id: str) -> bool:
        sql = self.SQL

        def write(conn: SqlConn) -> bool:
            lock = sql.lock_thread
            if lock is not None and conn.execute(lock, (thread_id,)).fetchone() is None:
                return False
            return lifecycle.delete_thread(conn, sql.lifecycle, thread_id)

        return await self._write(write, thread_id)

    async def revert_thread(
        self, thread_id: str, before_turn_id: str, *, updated_at: int
    ) -> RevertedHistory:
        sql = self.SQL.lifecycle

        def write(conn: SqlConn) -> RevertedHistory:
            old = self._updated_at(conn, thread_id)
            reverted = lifecycle.revert_thread(conn, sql, thread_id, before_turn_id)
            self._touch(conn, thread_id, old, updated_at)
            return reverted

        return await self._write(write, thread_id)

    async def inject_items(self, thread_id: str, items: list[Any]) -> None:
        sql = self.SQL.lifecycle

        def write(conn: SqlConn) -> None:
            self._updated_at(conn, thread_id)  # ThreadNotStored (and the row lock)
            lifecycle.inject_items(conn, sql, thread_id, items)

        await self._write(write, thread_id)

    async def get_injected_items(self, thread_id: str) -> list[InjectedItem]:
        sql = self.SQL.lifecycle
        return await self._read(lambda conn: lifecycle.injected_items(conn, sql, thread_id))

    # -- maintenance -----------------------------------------------------------------

    async def interrupt_running_turns(self) -> int:
        """Mark every ``inProgress`` turn ``interrupted``; return how many changed (at
        open, unless a cluster node: its turns are their owners' to end)."""

        def write(conn: SqlConn) -> int:
            sql = "UPDATE turns SET status = 'interrupted' WHERE status = 'inProgress'"
            return int(conn.execute(sql).rowcount)

        return await self._write(write)
