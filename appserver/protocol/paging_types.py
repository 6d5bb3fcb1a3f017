"""thread/turns/list and thread/items/list (Codex 0.171): params and results."""

from __future__ import annotations

from typing import Literal

import attrs

from appserver.protocol.items import ThreadItem
from appserver.protocol.objects import Turn, TurnItemsView
from appserver.protocol.wire import register_union

SortDirection = Literal["asc", "desc"]


@attrs.frozen(kw_only=True)
class ThreadTurnsListParams:
    thread_id: str
    cursor: str | None = None
    limit: int | None = None
    sort_direction: SortDirection | None = None
    items_view: TurnItemsView | None = None


@attrs.frozen(kw_only=True)
class ThreadTurnsListResponse:
    data: list[Turn]
    next_cursor: str | None = None
    backwards_cursor: str | None = None


@attrs.frozen(kw_only=True)
class ItemThreadItemsListAnchor:
    """An exclusive item position within the requested turn."""

    type: Literal["item"]
    item_id: str


ThreadItemsListCursor = str | ItemThreadItemsListAnchor
register_union(
    ThreadItemsListCursor,
    lambda value: ItemThreadItemsListAnchor if isinstance(value, dict) else str,
)


@attrs.frozen(kw_only=True)
class ThreadItemOutputDeferral:
    """Accepted and ignored: appserver sends every output inline."""


@attrs.frozen(kw_only=True)
class ThreadItemsListParams:
    thread_id: str
    turn_id: str | None = None
    cursor: ThreadItemsListCursor | None = None
    limit: int | None = None
    sort_direction: SortDirection | None = None
    defer_output: ThreadItemOutputDeferral | None = None


@attrs.frozen(kw_only=True)
class ThreadItemEntry:
    turn_id: str
    item: ThreadItem
    started_at_ms: int | None = None
    completed_at_ms: int | None = None


@attrs.frozen(kw_only=True)
class ThreadItemsListResponse:
    data: list[ThreadItemEntry]
    next_cursor: str | None = None
    backwards_cursor: str | None = None


__all__ = [
    "ItemThreadItemsListAnchor",
    "ThreadItemEntry",
    "ThreadItemOutputDeferral",
    "ThreadItemsListCursor",
    "ThreadItemsListParams",
    "ThreadItemsListResponse",
    "ThreadTurnsListParams",
    "ThreadTurnsListResponse",
]
