"""Stored turns as clients and agents see them: the wire form of stored items (snapshots,
thread/read) and a turn's `ctx.history()` (agents.base.TurnContext.history).

A compaction (thread/compact/start) stores its `contextCompaction` item with the summary
the backend wrote under the private key `summary`; the wire form never carries it (the
0.171 item is `{type, id}`). `history()` starts at the latest compaction: the turns before
it are left out, and the compaction's turn comes first, from its `contextCompaction` item
on, that item carrying the summary (agents.base.Compacting).

Items appended by thread/inject_items (raw Responses API items) join the history as
`{"type": "responseItem", "id": ..., "item": RAW}` entries at the end of the turn that was
the thread's last when they came (before any turn: a leading turn of their own; during the
running turn: a trailing one), so a later compaction drops them like the turns around them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from appserver.store.base import InjectedItem, TurnRecord
from appserver.threads import objects

COMPACTION = "contextCompaction"
# Keys a stored item may hold that never go on the wire, by item type.
PRIVATE_KEYS = {COMPACTION: ("summary",)}


def wire_item(item: dict[str, Any]) -> dict[str, Any]:
    """A stored item as the wire shows it (without its private keys)."""
    private = PRIVATE_KEYS.get(item.get("type", ""))
    if not private or not any(key in item for key in private):
        return item
    return {k: v for k, v in item.items() if k not in private}


def stored_turn(turn: TurnRecord) -> dict[str, Any]:
    """A stored turn as snapshots show it (every item)."""
    return objects.turn_object(
        turn.id,
        turn.status,
        turn.error,
        [wire_item(item) for item in turn.items],
        started_at_ms=turn.started_at_ms,
        completed_at_ms=turn.completed_at_ms,
    )


def history_turn(turn: TurnRecord) -> dict[str, Any]:
    """A stored turn as `ctx.history()` shows it: as snapshots do, with the summary of a
    `contextCompaction` item."""
    return objects.turn_object(
        turn.id,
        turn.status,
        turn.error,
        list(turn.items),
        started_at_ms=turn.started_at_ms,
        completed_at_ms=turn.completed_at_ms,
    )


INJECTED = "responseItem"


def with_injected(
    turns: Sequence[TurnRecord], injected: Sequence[InjectedItem]
) -> list[TurnRecord]:
    """`turns` with each injected item as a `responseItem` entry after the items of the
    turn it followed (module docstring)."""
    if not injected:
        return list(turns)
    known = {t.id for t in turns}
    by_turn: dict[str | None, list[dict[str, Any]]] = {}
    for index, entry in enumerate(injected):
        anchor = entry.after_turn_id
        key = anchor if anchor is None or anchor in known else "(later)"
        by_turn.setdefault(key, []).append(
            {"type": INJECTED, "id": f"injected-{index}", "item": entry.item}
        )
    thread_id = turns[0].thread_id if turns else ""

    def synthetic(turn_id: str, items: list[dict[str, Any]]) -> TurnRecord:
        return TurnRecord(id=turn_id, thread_id=thread_id, status="completed", items=items)

    out = [synthetic("injected-first", by_turn[None])] if None in by_turn else []
    for turn in turns:
        extra = by_turn.get(turn.id)
        out.append(attrs.evolve(turn, items=[*turn.items, *extra]) if extra else turn)
    if "(later)" in by_turn:
        out.append(synthetic("injected-last", by_turn["(later)"]))
    return out


def history(
    turns: Sequence[TurnRecord], current_turn_id: str, injected: Sequence[InjectedItem] = ()
) -> list[dict[str, Any]]:
    """The history of turn `current_turn_id` (PROTOCOL-like contract in agents.base):
    every other stored turn, oldest first, from the latest compaction on. That
    compaction's turn is the first entry, holding its items from the `contextCompaction`
    item (with `summary`) on; the turns before it are left out. Injected items are in
    place (module docstring)."""
    earlier = with_injected([t for t in turns if t.id != current_turn_id], injected)
    for index in range(len(earlier) - 1, -1, -1):
        items = earlier[index].items
        at = _last_compaction(items)
        if at is None:
            continue
        first = history_turn(earlier[index])
        first["items"] = list(items[at:])
        return [first, *(history_turn(t) for t in earlier[index + 1 :])]
    return [history_turn(t) for t in earlier]


def _last_compaction(items: Sequence[dict[str, Any]]) -> int | None:
    for index in range(len(items) - 1, -1, -1):
        item = items[index]
        if item.get("type") == COMPACTION and isinstance(item.get("summary"), str):
            return index
    return None


def completed_params(params: dict[str, Any], item: dict[str, Any], at_ms: int) -> dict[str, Any]:
    """`item/completed` params (0.171: the completion time; no token count is kept)."""
    return {**params, "item": item, "completedAtMs": at_ms, "contentTokenCount": None}
