"""Turn and item pages of the in-memory store (`thread/turns/list`, `thread/items/list`):
windows over the per-thread seq lists, with the cursors of `appserver.store.pages`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from appserver.store.base import SortDirection, TurnStatus, UnknownItemAnchor
from appserver.store.cursor import clone_json
from appserver.store.pages import (
    ItemEntry,
    ItemPage,
    Position,
    TurnPage,
    decode_position,
    page_positions,
    summary_items,
    window,
)

if TYPE_CHECKING:
    from appserver.store._memory_records import MemThread


def turn_state(thread: MemThread) -> tuple[list[str], TurnStatus | None]:
    """(ids of the thread's turns ``inProgress``, the last turn's status)."""
    running = [turn.id for turn in thread.turn_order if turn.status == "inProgress"]
    last = thread.turn_order[-1].status if thread.turn_order else None
    return running, last


def turn_page(
    thread: MemThread | None,
    thread_id: str,
    limit: int,
    cursor: str | None,
    direction: SortDirection,
    with_items: bool,
    *,
    summary: bool = False,
) -> TurnPage:
    position = None if cursor is None else decode_position(cursor, "turns", thread_id)
    limit = max(1, limit)
    if thread is None:
        return TurnPage(turns=[], next_cursor=None, backwards_cursor=None)
    picked = [
        thread.turn_order[i]
        for i in window(thread.turn_seqs, position, direction == "desc", limit + 1)
    ]
    next_cursor, backwards = page_positions(
        "turns", thread_id, [turn.seq for turn in picked], limit
    )
    turns = [
        turn.record(thread_id, with_items=with_items and not summary) for turn in picked[:limit]
    ]
    if summary:  # only the shown items are copied
        for record, turn in zip(turns, picked, strict=False):
            shown = summary_items(turn.status, list(turn.items.values()))
            record.items.extend(clone_json(item) for item in shown)
    return TurnPage(turns=turns, next_cursor=next_cursor, backwards_cursor=backwards)


def item_page(
    thread: MemThread | None,
    thread_id: str,
    limit: int,
    cursor: str | None,
    direction: SortDirection,
    turn_id: str | None,
    after_item: str | None,
) -> ItemPage:
    position = None if cursor is None else decode_position(cursor, "items", thread_id)
    limit = max(1, limit)
    empty = ItemPage(items=[], next_cursor=None, backwards_cursor=None)
    if thread is None:
        return empty
    if turn_id is None:
        seqs, order = thread.item_seqs, thread.item_order
    else:
        turn = thread.turns.get(turn_id)
        if turn is None:
            return empty
        seqs = list(turn.item_seqs.values())
        order = [(turn, key) for key in turn.item_seqs]
        if after_item is not None:
            anchor = turn.item_seqs.get(after_item)
            if anchor is None:
                raise UnknownItemAnchor(f"no item {after_item} in turn {turn_id}")
            position = Position(seq=anchor)
    picked = [(seqs[i], *order[i]) for i in window(seqs, position, direction == "desc", limit + 1)]
    next_cursor, backwards = page_positions("items", thread_id, [p[0] for p in picked], limit)
    entries = [
        ItemEntry(turn_id=turn.id, item=clone_json(turn.items[key]))
        for _, turn, key in picked[:limit]
    ]
    return ItemPage(items=entries, next_cursor=next_cursor, backwards_cursor=backwards)
