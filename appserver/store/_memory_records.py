"""The in-memory store's records (``MemoryStore`` in memory.py keeps them): a thread with
its turns, items, insertion seqs and sort-key history, and the thread/list filter."""

from __future__ import annotations

from typing import Any

import attrs

from appserver.store.base import ListQuery, SortKey, ThreadRecord, TurnRecord, TurnStatus
from appserver.store.cursor import clone_json, fold

__all__ = ["Ids", "MemThread", "MemTurn", "copy_thread", "matches"]


@attrs.define
class MemTurn:
    id: str
    status: TurnStatus
    seq: int = 0  # insertion seq (page cursors), as SQLite's turns.seq
    error: dict[str, Any] | None = None
    items: dict[str, dict[str, Any]] = attrs.Factory(dict)
    item_seqs: dict[str, int] = attrs.Factory(dict)
    started_at_ms: int | None = None
    completed_at_ms: int | None = None

    def record(self, thread_id: str, *, with_items: bool = True) -> TurnRecord:
        items = [clone_json(item) for item in self.items.values()] if with_items else []
        return TurnRecord(
            id=self.id,
            thread_id=thread_id,
            status=self.status,
            error=clone_json(self.error),
            items=items,
            started_at_ms=self.started_at_ms,
            completed_at_ms=self.completed_at_ms,
        )


@attrs.define
class MemThread:
    record: ThreadRecord
    key_seq: int = 0  # change seq of the last updated_at / recency_at change (0: none)
    # (seq, previous updated_at, previous recency_at)
    history: list[tuple[int, int, int]] = attrs.Factory(list)
    turns: dict[str, MemTurn] = attrs.Factory(dict)
    # Insertion seqs, ascending, for keyset pages: of turns, and of items (with theirs).
    turn_seqs: list[int] = attrs.Factory(list)
    turn_order: list[MemTurn] = attrs.Factory(list)
    item_seqs: list[int] = attrs.Factory(list)
    item_order: list[tuple[MemTurn, str]] = attrs.Factory(list)
    # thread/inject_items: (seq of the last turn when injected, 0 if none; the raw item)
    injected: list[tuple[int, Any]] = attrs.Factory(list)

    def key_as_of(self, sort_key: SortKey, snapshot: int) -> int:
        if sort_key == "created_at":
            return self.record.created_at
        current = self.record.updated_at if sort_key == "updated_at" else self.record.recency_at
        if self.key_seq <= snapshot:
            return current
        for seq, updated_at, recency_at in self.history:
            if seq > snapshot:
                return updated_at if sort_key == "updated_at" else recency_at
        return current  # unreachable while the history is intact


def copy_thread(record: ThreadRecord) -> ThreadRecord:
    return attrs.evolve(record, settings=clone_json(record.settings))


@attrs.frozen
class Ids:
    included: frozenset[str] | None
    excluded: frozenset[str]

    @classmethod
    def of(cls, query: ListQuery) -> Ids:
        included = query.included_ids
        return cls(None if included is None else frozenset(included), frozenset(query.excluded_ids))


def matches(record: ThreadRecord, query: ListQuery, ids: Ids) -> bool:
    if record.archived != query.archived:
        return False
    cwds = query.cwds()
    if cwds is not None and record.cwd not in cwds:
        return False
    if ids.included is not None and record.id not in ids.included:
        return False
    if record.id in ids.excluded:
        return False
    if query.model_providers and record.model_provider not in query.model_providers:
        return False
    if query.search_term:
        term = fold(query.search_term)
        if term not in fold(record.preview) and (
            record.name is None or term not in fold(record.name)
        ):
            return False
    return True
