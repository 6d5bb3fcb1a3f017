"""thread/turns/list and thread/items/list pages: records and cursors both stores share.

A page cursor is ``urlsafe-base64(JSON)`` without padding, e.g. the JSON
``{"v":1,"k":"turns","t":"0199…","s":42,"a":0}``:

- ``k``: what it pages (``turns`` or ``items``; a cursor of one kind is refused by the
  other), ``t``: the thread it was issued for (refused for any other thread);
- ``s``: a position, the store's insertion seq of a turn or an item. Seqs only grow, so a
  position stays valid while turns and items are added (keyset paging: nothing repeats,
  nothing is skipped, a new turn shows up at the end);
- ``a``: 1 = an inclusive anchor (a ``backwardsCursor``: the page from it includes the
  turn or item at ``s`` again), 0 = exclusive (a ``nextCursor``: the page after it).

As with thread/list a position has no direction: the request's ``sortDirection`` says
which way to go from it.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from typing import Any, Final, Literal, cast

import attrs

from appserver.store.base import InvalidCursor, ThreadRecord, TurnRecord, TurnStatus

__all__ = [
    "ItemEntry",
    "ItemPage",
    "LoadState",
    "PageKind",
    "Position",
    "TurnPage",
    "decode_position",
    "encode_position",
    "page_positions",
    "window",
]

PageKind = Literal["turns", "items"]
_VERSION: Final = 1
_MAX_CURSOR_CHARS: Final = 1024


@attrs.frozen(kw_only=True)
class Position:
    seq: int
    inclusive: bool = False

    def admits(self, seq: int, descending: bool) -> bool:
        """Whether ``seq`` lies beyond this position in the page's direction."""
        if self.inclusive:
            return seq <= self.seq if descending else seq >= self.seq
        return seq < self.seq if descending else seq > self.seq


@attrs.frozen(kw_only=True)
class TurnPage:
    """A page of turns (items filled only when asked for); ``next_cursor`` continues in
    the same direction (None at the end), ``backwards_cursor`` (None for an empty page)
    goes the other way from the page's first turn, that turn included."""

    turns: list[TurnRecord]
    next_cursor: str | None
    backwards_cursor: str | None


@attrs.frozen(kw_only=True)
class LoadState:
    """What loading a thread needs from the store, without reading any item: the record,
    the ids of its turns stored ``inProgress`` (cut off by a crash; in insertion order)
    and the status of its last turn (None: no turns)."""

    record: ThreadRecord
    running_turn_ids: list[str]
    last_turn_status: TurnStatus | None


def summary_items(status: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items a turn's ``summary`` view shows, in order: its user messages, then (a
    completed turn only) its final agent message, as the reference's summary."""
    users = [item for item in items if item.get("type") == "userMessage"]
    if status == "completed":
        for item in reversed(items):
            if item.get("type") == "agentMessage":
                return [*users, item]
    return users


@attrs.frozen(kw_only=True)
class ItemEntry:
    turn_id: str
    item: dict[str, Any]


@attrs.frozen(kw_only=True)
class ItemPage:
    items: list[ItemEntry]
    next_cursor: str | None
    backwards_cursor: str | None


def encode_position(kind: PageKind, thread_id: str, seq: int, *, inclusive: bool) -> str:
    payload = {"v": _VERSION, "k": kind, "t": thread_id, "s": seq, "a": int(inclusive)}
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_position(text: object, kind: PageKind, thread_id: str) -> Position:
    """Parse ``text``; InvalidCursor unless it is a ``kind`` cursor for ``thread_id``."""
    if not isinstance(text, str) or not text or len(text) > _MAX_CURSOR_CHARS:
        raise InvalidCursor("invalid cursor: not a cursor")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
        payload: Any = json.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidCursor("invalid cursor: not a cursor") from None
    if not isinstance(payload, dict) or set(payload) != {"v", "k", "t", "s", "a"}:
        raise InvalidCursor("invalid cursor: wrong shape")
    fields = cast(dict[str, Any], payload)
    seq, anchor = fields["s"], fields["a"]
    if fields["v"] != _VERSION or fields["k"] != kind:
        raise InvalidCursor(f"invalid cursor: not a thread/{kind}/list cursor")
    if fields["t"] != thread_id:
        raise InvalidCursor("invalid cursor: issued for another thread")
    if type(seq) is not int or not 0 <= seq < 2**63 or anchor not in (0, 1):
        raise InvalidCursor("invalid cursor: wrong shape")
    return Position(seq=seq, inclusive=anchor == 1)


def page_positions(
    kind: PageKind, thread_id: str, seqs: list[int], limit: int
) -> tuple[str | None, str | None]:
    """(nextCursor, backwardsCursor) for a page cut from ``seqs`` (the seqs of up to
    ``limit + 1`` rows in page order; more than ``limit`` means more follow)."""
    next_cursor = backwards = None
    if len(seqs) > limit:
        next_cursor = encode_position(kind, thread_id, seqs[limit - 1], inclusive=False)
    if seqs:
        backwards = encode_position(kind, thread_id, seqs[0], inclusive=True)
    return next_cursor, backwards


def window(seqs: list[int], position: Position | None, descending: bool, count: int) -> range:
    """Indexes into ``seqs`` (ascending) of the first ``count`` entries beyond
    ``position`` in the page's direction, in page order (a bisection, no scan)."""
    if descending:
        if position is None:
            end = len(seqs)
        elif position.inclusive:
            end = bisect.bisect_right(seqs, position.seq)
        else:
            end = bisect.bisect_left(seqs, position.seq)
        return range(end - 1, max(end - count, 0) - 1, -1)
    if position is None:
        start = 0
    elif position.inclusive:
        start = bisect.bisect_left(seqs, position.seq)
    else:
        start = bisect.bisect_right(seqs, position.seq)
    return range(start, min(start + count, len(seqs)))
