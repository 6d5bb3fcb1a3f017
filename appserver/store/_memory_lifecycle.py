"""MemoryStore's thread lifecycle writes (thread/fork, /revert, /inject_items), on the
store's own structures, with the semantics of ``_sql_lifecycle``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from appserver.store._memory_records import MemThread, MemTurn, copy_thread
from appserver.store.base import InjectedItem, RevertedHistory, ThreadRecord, TurnRecord
from appserver.store.cursor import clone_json, item_id
from appserver.store.errors import TurnNotStored
from appserver.store.pages import encode_position

if TYPE_CHECKING:
    from appserver.store.memory import MemoryStore

__all__ = ["imported", "inject", "injected_items", "revert_turns"]


def imported(store: MemoryStore, record: ThreadRecord, turns: list[TurnRecord]) -> MemThread:
    """A new thread holding ``turns`` (items included, ids kept), with new row seqs."""
    thread = MemThread(record=copy_thread(record))

    def next_seq() -> int:
        store._rows += 1
        return store._rows

    for stored in turns:
        turn = MemTurn(
            id=stored.id,
            status=stored.status,
            seq=next_seq(),
            error=clone_json(stored.error),
            started_at_ms=stored.started_at_ms,
            completed_at_ms=stored.completed_at_ms,
        )
        thread.turns[turn.id] = turn
        thread.turn_seqs.append(turn.seq)
        thread.turn_order.append(turn)
        for item in stored.items:
            key = item_id(item)
            if key not in turn.items:
                seq = next_seq()
                turn.item_seqs[key] = seq
                thread.item_seqs.append(seq)
                thread.item_order.append((turn, key))
            turn.items[key] = clone_json(item)
    return thread


def revert_turns(thread: MemThread, thread_id: str, before_turn_id: str) -> RevertedHistory:
    """Drop ``before_turn_id``, every later turn, their items and the items injected
    after them; the backwards cursors of what is left."""
    before = thread.turns.get(before_turn_id)
    if before is None:
        raise TurnNotStored(f"turn {before_turn_id} of thread {thread_id} is not stored")
    cut = thread.turn_order.index(before)
    for turn in thread.turn_order[cut:]:
        del thread.turns[turn.id]
    del thread.turn_seqs[cut:], thread.turn_order[cut:]
    kept = [
        (seq, entry)
        for seq, entry in zip(thread.item_seqs, thread.item_order, strict=True)
        if entry[0].id in thread.turns and thread.turns[entry[0].id] is entry[0]
    ]
    thread.item_seqs = [seq for seq, _ in kept]
    thread.item_order = [entry for _, entry in kept]
    thread.injected = [(after, item) for after, item in thread.injected if after < before.seq]
    turns = None
    if thread.turn_seqs:
        turns = encode_position("turns", thread_id, thread.turn_seqs[-1], inclusive=True)
    items = None
    if thread.item_seqs:
        items = encode_position("items", thread_id, thread.item_seqs[-1], inclusive=True)
    return RevertedHistory(turns_backwards_cursor=turns, items_backwards_cursor=items)


def inject(thread: MemThread, items: list[Any]) -> None:
    after = thread.turn_seqs[-1] if thread.turn_seqs else 0
    thread.injected.extend((after, clone_json(item)) for item in items)


def injected_items(thread: MemThread | None) -> list[InjectedItem]:
    if thread is None:
        return []
    by_seq = {turn.seq: turn.id for turn in thread.turn_order}
    return [
        InjectedItem(after_turn_id=by_seq.get(after), item=clone_json(item))
        for after, item in thread.injected
    ]
