"""History paging: thread/turns/list and thread/items/list (Codex 0.171).

Both read the store (a loaded thread's own store: an ephemeral thread has a private one),
so a thread need not be loaded. On a loaded thread the running turn appears as in a
snapshot (threads/registry.py ``snapshot_turns``): in progress, with its items so far.
Cursors are keyset positions on the store's insertion seqs (store/pages.py): stable while
turns and items are added. A `summary` page reads only the items it shows (the store's
`list_turn_summaries`), so its cost does not grow with the turns' other items.
"""

from __future__ import annotations

from typing import Any

from appserver.protocol import errors
from appserver.protocol import paging_types as pgt
from appserver.protocol.errors import InvalidParams
from appserver.requests import RequestContext
from appserver.store.base import InvalidCursor, ThreadStore, TurnRecord, UnknownItemAnchor
from appserver.store.pages import TurnPage
from appserver.threads import objects
from appserver.threads.history import wire_item
from appserver.threads.loaded import LoadedThread
from appserver.threads.turn import stored_turn

from .common import Handler, Services, thread_id_of

DEFAULT_LIMIT = 25
MAX_LIMIT = 100


def _limit(value: int | None) -> int:
    return max(1, min(MAX_LIMIT, DEFAULT_LIMIT if value is None else value))


async def _store_of(s: Services, thread_id: str) -> tuple[ThreadStore, LoadedThread | None]:
    thread = s.registry.get(thread_id)
    if thread is not None:
        return thread.store, thread
    await s.stored(thread_id)  # threadNotFound
    return s.store, None


def _viewed(turn: dict[str, Any], view: str) -> dict[str, Any]:
    """``turn`` (every item) as ``itemsView`` asks: nothing, the summary (the user's
    messages and a completed turn's final answer, as the reference) or everything."""
    items = turn["items"]
    if view == "notLoaded":
        items = []
    elif view == "summary":
        users = [item for item in items if item.get("type") == "userMessage"]
        items = users + objects.turn_summary(turn["status"], items)
    return {**turn, "items": items, "itemsView": view}


async def thread_turns_list(
    s: Services, ctx: RequestContext, p: pgt.ThreadTurnsListParams
) -> dict[str, Any]:
    thread_id = thread_id_of(p.thread_id)
    view = p.items_view or "summary"
    store, thread = await _store_of(s, thread_id)

    async def read() -> TurnPage:
        limit, direction = _limit(p.limit), p.sort_direction or "desc"
        if view == "summary":  # the shown items only, not every item of each turn
            return await store.list_turn_summaries(
                thread_id, limit=limit, cursor=p.cursor, direction=direction
            )
        return await store.list_turns(
            thread_id,
            limit=limit,
            cursor=p.cursor,
            direction=direction,
            with_items=view == "full",
        )

    try:
        # As snapshot_turns: re-read if a turn's end was stored meanwhile, so the
        # running turn is never shown both stale and gone.
        while True:
            version = None if thread is None else thread.finished_turns
            page = await read()
            if thread is None or thread.finished_turns == version:
                break
    except InvalidCursor:
        raise errors.invalid_cursor(p.cursor or "") from None
    running = thread.turn if thread is not None else None

    def shown(turn: TurnRecord) -> dict[str, Any]:
        if running is not None and turn.id == running.id:
            return _viewed(running.snapshot(), view)
        return _viewed(stored_turn(turn), view)

    return {
        "data": [shown(turn) for turn in page.turns],
        "nextCursor": page.next_cursor,
        "backwardsCursor": page.backwards_cursor,
    }


async def thread_items_list(
    s: Services, ctx: RequestContext, p: pgt.ThreadItemsListParams
) -> dict[str, Any]:
    thread_id = thread_id_of(p.thread_id)
    cursor = after_item = None
    if isinstance(p.cursor, pgt.ItemThreadItemsListAnchor):
        if not p.turn_id:
            raise InvalidParams.field("cursor", "turnId is required when cursor is an item anchor")
        after_item = p.cursor.item_id
    else:
        cursor = p.cursor
    store, _ = await _store_of(s, thread_id)
    try:
        page = await store.list_items(
            thread_id,
            limit=_limit(p.limit),
            cursor=cursor,
            direction=p.sort_direction or "asc",
            turn_id=p.turn_id,
            after_item=after_item,
        )
    except InvalidCursor:
        raise errors.invalid_cursor(cursor or "") from None
    except UnknownItemAnchor:
        message = "cursor.itemId does not identify an item in the requested history scope"
        raise InvalidParams.field("cursor.itemId", message) from None
    return {
        "data": [
            {
                "turnId": entry.turn_id,
                "item": wire_item(entry.item),
                "startedAtMs": entry.item.get("startedAtMs"),
                "completedAtMs": entry.item.get("completedAtMs"),
            }
            for entry in page.items
        ],
        "nextCursor": page.next_cursor,
        "backwardsCursor": page.backwards_cursor,
    }


METHODS: dict[str, Handler] = {
    "thread/turns/list": thread_turns_list,
    "thread/items/list": thread_items_list,
}
