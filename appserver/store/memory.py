"""``MemoryStore``: the ThreadStore kept in dicts (``--in-memory`` and embedding).

Semantics match :class:`appserver.store.sqlite.SqliteStore` exactly, including list
filters, ordering, cursors (same format, same updated_at history scheme; see that module)
and errors. Values go in and out through a JSON round trip, so callers never share
mutable state with the store and see what SQLite would give back. Listing costs
O(threads) per page, which is fine for the thread counts an in-memory server holds.
"""

from __future__ import annotations

import collections
import heapq
import time
from typing import Any

import trio

from appserver.store import _memory_lifecycle as lifecycle
from appserver.store._memory_events import MemoryEvents
from appserver.store._memory_pages import item_page, turn_page, turn_state
from appserver.store._memory_records import Ids, MemThread, MemTurn, copy_thread, matches
from appserver.store.base import (
    _UNSET,
    EventSeqMark,
    InjectedItem,
    InvalidCursor,
    ListQuery,
    LoggedEvent,
    RevertedHistory,
    SortDirection,
    ThreadNotStored,
    ThreadPage,
    ThreadRecord,
    TurnRecord,
    TurnStatus,
)
from appserver.store.cursor import (
    DEFAULT_HISTORY_RETENTION_SECONDS,
    beyond,
    clone_json,
    decode_cursor,
    item_id,
    page_cursors,
)
from appserver.store.errors import AlreadyStored, StoreClosed, TurnNotStored
from appserver.store.pages import (
    ItemPage,
    LoadState,
    TurnPage,
)

__all__ = ["MemoryStore"]


class MemoryStore:
    """A ThreadStore in memory; see the module docstring."""

    def __init__(
        self, *, history_retention_seconds: float = DEFAULT_HISTORY_RETENTION_SECONDS
    ) -> None:
        self._retention = history_retention_seconds
        self._threads: dict[str, MemThread] = {}
        self._seq = 0  # global change sequence (bumped by every updated_at change)
        self._rows = 0  # insertion seq of turns and items (as SQLite's row seqs)
        self._pruned_seq = 0  # history rows with seq <= this are forgotten
        self._log: collections.deque[tuple[int, str, float]] = collections.deque()
        self._events = MemoryEvents()
        self._closed = False

    async def _enter(self) -> None:
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise StoreClosed("the memory store is closed")

    def _thread(self, thread_id: str) -> MemThread:
        thread = self._threads.get(thread_id)
        if thread is None:
            raise ThreadNotStored(f"thread {thread_id} is not stored")
        return thread

    def _turn(self, thread_id: str, turn_id: str) -> MemTurn:
        turn = self._thread(thread_id).turns.get(turn_id)
        if turn is None:
            raise TurnNotStored(f"turn {turn_id} of thread {thread_id} is not stored")
        return turn

    def _set_updated_at(
        self, thread: MemThread, updated_at: int, *, recency_at: int | None = None
    ) -> None:
        record = thread.record
        previous, previous_recency = record.updated_at, record.recency_at
        recency = previous_recency if recency_at is None else recency_at
        if updated_at == previous and recency == previous_recency:
            return
        self._seq += 1
        thread.history.append((self._seq, previous, previous_recency))
        thread.key_seq = self._seq
        record.updated_at, record.recency_at = updated_at, recency
        self._log.append((self._seq, thread.record.id, time.time()))
        self._prune(self._retention)

    def _prune(self, max_age_seconds: float) -> int:
        cutoff = time.time() - max_age_seconds
        pruned = 0
        while self._log and self._log[0][2] < cutoff:
            seq, thread_id, _ = self._log.popleft()
            gone = self._threads.get(thread_id)  # None: deleted since
            history = [] if gone is None else gone.history
            if history and history[0][0] == seq:
                del history[0]
            self._pruned_seq = max(self._pruned_seq, seq)
            pruned += 1
        return pruned

    # -- threads ---------------------------------------------------------------------

    async def create_thread(self, record: ThreadRecord) -> None:
        await self._enter()
        if record.id in self._threads:
            raise AlreadyStored(f"thread {record.id} is already stored")
        self._threads[record.id] = MemThread(record=copy_thread(record))

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        await self._enter()
        thread = self._threads.get(thread_id)
        return None if thread is None else copy_thread(thread.record)

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
        await self._enter()
        thread = self._thread(thread_id)
        new_settings = thread.record.settings if settings is _UNSET else clone_json(settings)
        if name is not _UNSET:
            thread.record.name = name
        if preview is not _UNSET:
            thread.record.preview = preview
        if archived is not _UNSET:
            thread.record.archived = bool(archived)
        if cwd is not _UNSET:
            thread.record.cwd = cwd
        if model is not _UNSET:
            thread.record.model = model
        if model_provider is not _UNSET:
            thread.record.model_provider = model_provider
        thread.record.settings = new_settings
        if updated_at is not _UNSET:
            self._set_updated_at(thread, updated_at)

    async def list_page(self, query: ListQuery) -> ThreadPage:
        await self._enter()
        key = query.sort_key
        cursor = None if query.cursor is None else decode_cursor(query.cursor, key)
        snapshot = self._seq
        if cursor is not None:
            if cursor.snapshot > self._seq:
                raise InvalidCursor("invalid cursor: not issued by this store")
            if key != "created_at" and cursor.snapshot < self._pruned_seq:
                raise InvalidCursor("invalid cursor: expired, start paging again")
            snapshot = cursor.snapshot
        descending = query.direction == "desc"
        rows: list[tuple[int, str, ThreadRecord]] = []
        ids = Ids.of(query)
        for thread in self._threads.values():
            record = thread.record
            if not matches(record, query, ids):
                continue
            value = thread.key_as_of(key, snapshot)
            if beyond(value, record.id, cursor, descending):
                rows.append((value, record.id, record))
        limit = max(1, query.limit)
        pick = heapq.nlargest if descending else heapq.nsmallest
        top = pick(limit + 1, rows, key=lambda row: (row[0], row[1]))
        next_cursor, backwards = page_cursors([(k, i) for k, i, _ in top], limit, key, snapshot)
        return ThreadPage(
            threads=[copy_thread(record) for _, _, record in top[:limit]],
            next_cursor=next_cursor,
            backwards_cursor=backwards,
        )

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
        await self._enter()
        thread = self._thread(thread_id)
        if turn_id in thread.turns:
            raise AlreadyStored(f"turn {turn_id} of thread {thread_id} is already stored")
        self._rows += 1
        turn = MemTurn(id=turn_id, status="inProgress", seq=self._rows, started_at_ms=started_at_ms)
        thread.turns[turn_id] = turn
        thread.turn_seqs.append(turn.seq)
        thread.turn_order.append(turn)
        if preview is not None:
            thread.record.preview = preview
        self._set_updated_at(thread, updated_at, recency_at=updated_at)

    async def put_item(self, thread_id: str, turn_id: str, item: dict[str, Any]) -> None:
        await self._enter()
        key = item_id(item)
        stored = clone_json(item)
        turn = self._turn(thread_id, turn_id)
        if key not in turn.items:
            self._rows += 1
            turn.item_seqs[key] = self._rows
            thread = self._threads[thread_id]
            thread.item_seqs.append(self._rows)
            thread.item_order.append((turn, key))
        # assigning to an existing key keeps the item's original position
        turn.items[key] = stored

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
        await self._enter()
        turn = self._turn(thread_id, turn_id)
        turn.completed_at_ms = completed_at_ms
        stored_error = None if error is None else clone_json(error)
        turn.status = status
        turn.error = stored_error
        self._set_updated_at(self._threads[thread_id], updated_at)

    async def get_turns(self, thread_id: str) -> list[TurnRecord]:
        await self._enter()
        thread = self._threads.get(thread_id)
        if thread is None:
            return []
        return [turn.record(thread_id) for turn in thread.turns.values()]

    async def list_turns(
        self,
        thread_id: str,
        *,
        limit: int,
        cursor: str | None = None,
        direction: SortDirection = "desc",
        with_items: bool = True,
    ) -> TurnPage:
        await self._enter()
        return turn_page(
            self._threads.get(thread_id), thread_id, limit, cursor, direction, with_items
        )

    async def list_turn_summaries(
        self,
        thread_id: str,
        *,
        limit: int,
        cursor: str | None = None,
        direction: SortDirection = "desc",
    ) -> TurnPage:
        await self._enter()
        thread = self._threads.get(thread_id)
        return turn_page(thread, thread_id, limit, cursor, direction, False, summary=True)

    async def load_state(self, thread_id: str) -> LoadState | None:
        record = await self.get_thread(thread_id)
        thread = self._threads.get(thread_id)
        if record is None or thread is None:
            return None
        running, last = turn_state(thread)
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
        await self._enter()
        thread = self._threads.get(thread_id)
        return item_page(thread, thread_id, limit, cursor, direction, turn_id, after_item)

    # -- thread lifecycle (_memory_lifecycle) ----------------------------------------

    async def import_thread(self, record: ThreadRecord, turns: list[TurnRecord]) -> None:
        await self._enter()
        if record.id in self._threads:
            raise AlreadyStored(f"thread {record.id} is already stored")
        self._threads[record.id] = lifecycle.imported(self, record, turns)

    async def delete_thread(self, thread_id: str) -> bool:
        await self._enter()
        self._events.forget(thread_id)
        return self._threads.pop(thread_id, None) is not None

    async def revert_thread(
        self, thread_id: str, before_turn_id: str, *, updated_at: int
    ) -> RevertedHistory:
        await self._enter()
        thread = self._thread(thread_id)
        reverted = lifecycle.revert_turns(thread, thread_id, before_turn_id)
        self._set_updated_at(thread, updated_at)
        return reverted

    async def inject_items(self, thread_id: str, items: list[Any]) -> None:
        await self._enter()
        lifecycle.inject(self._thread(thread_id), items)

    async def get_injected_items(self, thread_id: str) -> list[InjectedItem]:
        await self._enter()
        return lifecycle.injected_items(self._threads.get(thread_id))

    # -- event log (_memory_events, PROTOCOL.md §13) --------------------------------

    async def get_event_mark(self, thread_id: str) -> EventSeqMark:
        await self._enter()
        return self._events.get_mark(thread_id)

    async def put_event_mark(self, thread_id: str, mark: EventSeqMark) -> None:
        await self._enter()
        self._events.put_mark(thread_id, mark)

    async def append_events(
        self, thread_id: str, events: list[LoggedEvent], *, max_events: int, max_bytes: int
    ) -> None:
        await self._enter()
        self._events.append(thread_id, events, max_events, max_bytes)

    async def read_events(self, thread_id: str, after_seq: int) -> list[LoggedEvent]:
        await self._enter()
        return self._events.read(thread_id, after_seq)

    # -- maintenance -----------------------------------------------------------------

    async def interrupt_running_turns(self) -> int:
        """Mark every ``inProgress`` turn ``interrupted``; return how many changed."""
        await self._enter()
        changed = 0
        for thread in self._threads.values():
            for turn in thread.turns.values():
                if turn.status == "inProgress":
                    turn.status = "interrupted"
                    changed += 1
        return changed

    async def prune_history(self, max_age_seconds: float | None = None) -> int:
        """Forget updated_at history older than ``max_age_seconds`` (default: the
        retention); return how many entries went. Cursors older than that may expire."""
        await self._enter()
        return self._prune(self._retention if max_age_seconds is None else max_age_seconds)

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()
        self._closed = True
