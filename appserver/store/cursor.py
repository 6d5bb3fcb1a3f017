"""thread/list cursors and the small helpers both stores share.

A cursor is ``urlsafe-base64(JSON)`` without padding, e.g. the JSON
``{"v":1,"k":"updated_at","t":1700000000,"i":"0190...","s":42}``:

- ``k``: the sort key the cursor was issued for (using it with another key is an error);
- ``t``, ``i``: a position in the (sort key value, thread id) order. A ``nextCursor``
  names the last thread of its page: the next page holds the threads strictly beyond
  that pair in the request's direction. A ``backwardsCursor`` has ``"i": null``: an
  anchor at the value ``t`` itself, so a page from it includes every thread whose key
  equals ``t`` (same-second threads are never skipped). A position has no direction:
  the request's ``sortDirection`` says which way to go from it, as in Codex.
- ``s``: the store's change sequence when paging began (the first page was read). The
  ``updated_at`` / ``recency_at`` order of every later page, in either direction, is the
  order as of that moment (see :mod:`appserver.store.sqlite`).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Final, cast

import attrs

from appserver.store.base import InvalidCursor, SortKey

__all__ = [
    "DEFAULT_HISTORY_RETENTION_SECONDS",
    "Cursor",
    "beyond",
    "clone_json",
    "decode_cursor",
    "dump_json",
    "encode_cursor",
    "fold",
    "is_utf8",
    "item_id",
    "page_cursors",
]

#: How long the updated_at history behind cursors is kept: a cursor is honoured for at
#: least this long after its first page; an older one may be rejected as expired.
DEFAULT_HISTORY_RETENTION_SECONDS: Final = 24 * 3600.0

_VERSION: Final = 1
_MAX_CURSOR_CHARS: Final = 2048
_SORT_KEYS: Final[tuple[SortKey, ...]] = ("created_at", "updated_at", "recency_at")


@attrs.frozen(kw_only=True)
class Cursor:
    sort_key: SortKey
    key: int
    id: str | None  # None: an inclusive anchor at ``key`` (a backwards cursor)
    snapshot: int


def encode_cursor(cursor: Cursor) -> str:
    payload = {
        "v": _VERSION,
        "k": cursor.sort_key,
        "t": cursor.key,
        "i": cursor.id,
        "s": cursor.snapshot,
    }
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def decode_cursor(text: object, sort_key: SortKey) -> Cursor:
    """Parse ``text``; raise :class:`InvalidCursor` unless it is a cursor for ``sort_key``."""
    if not isinstance(text, str) or not text:
        raise InvalidCursor("invalid cursor: not a non-empty string")
    if len(text) > _MAX_CURSOR_CHARS:
        raise InvalidCursor("invalid cursor: too long")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidCursor("invalid cursor: not urlsafe base64") from None
    try:
        payload: Any = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise InvalidCursor("invalid cursor: not JSON") from None
    if not isinstance(payload, dict) or set(payload) != {"v", "k", "t", "i", "s"}:
        raise InvalidCursor("invalid cursor: wrong shape")
    fields = cast(dict[str, Any], payload)
    if fields["v"] != _VERSION or not _is_int(fields["v"]):
        raise InvalidCursor("invalid cursor: unknown version")
    if fields["k"] not in _SORT_KEYS:
        raise InvalidCursor("invalid cursor: unknown sort key")
    if fields["k"] != sort_key:
        raise InvalidCursor(f"invalid cursor: issued for sortKey {fields['k']!r}, not {sort_key!r}")
    if not _is_int(fields["t"]) or not (fields["i"] is None or isinstance(fields["i"], str)):
        raise InvalidCursor("invalid cursor: wrong shape")
    if fields["i"] is not None and not is_utf8(fields["i"]):
        raise InvalidCursor("invalid cursor: bad id")
    if not _is_int(fields["s"]) or fields["s"] < 0:
        raise InvalidCursor("invalid cursor: wrong shape")
    if not -(2**63) <= fields["t"] < 2**63 or fields["s"] >= 2**63:
        raise InvalidCursor("invalid cursor: out of range")
    return Cursor(sort_key=sort_key, key=fields["t"], id=fields["i"], snapshot=fields["s"])


def item_id(item: dict[str, Any]) -> str:
    """The id ``put_item`` upserts by."""
    value = item.get("id")
    if not isinstance(value, str):
        raise ValueError("an item needs a string 'id'")
    return value


def fold(text: str) -> str:
    """Case folding used by ``search_term`` (identical in both stores)."""
    return text.casefold()


def dump_json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if not is_utf8(text):  # lone surrogates: keep them, escaped
        text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text


def is_utf8(text: str) -> bool:
    """Whether ``text`` can be stored as SQLite TEXT (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clone_json(value: Any) -> Any:
    """A deep copy through JSON: what a value looks like after a trip through SQLite."""
    return json.loads(dump_json(value))


def beyond(key: int, thread_id: str, cursor: Cursor | None, descending: bool) -> bool:
    """Whether (key, thread_id) comes after ``cursor`` in the listing's direction."""
    if cursor is None:
        return True
    if cursor.id is None:  # an inclusive anchor
        return key <= cursor.key if descending else key >= cursor.key
    if descending:
        return (key, thread_id) < (cursor.key, cursor.id)
    return (key, thread_id) > (cursor.key, cursor.id)


def page_cursors(
    rows: list[tuple[int, str]], limit: int, sort_key: SortKey, snapshot: int
) -> tuple[str | None, str | None]:
    """(nextCursor, backwardsCursor) for a page cut from ``rows`` (the (key, id) of up
    to ``limit + 1`` threads in listing order; more than ``limit`` means more follow)."""
    next_cursor = backwards = None
    if len(rows) > limit:
        key, last_id = rows[limit - 1]
        next_cursor = encode_cursor(
            Cursor(sort_key=sort_key, key=key, id=last_id, snapshot=snapshot)
        )
    if rows:
        backwards = encode_cursor(
            Cursor(sort_key=sort_key, key=rows[0][0], id=None, snapshot=snapshot)
        )
    return next_cursor, backwards
