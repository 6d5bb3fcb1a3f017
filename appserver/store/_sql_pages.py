"""thread/turns/list and thread/items/list pages (``store/pages.py``) of the SQL stores,
written once over each store's ``PagesSql`` (its SQL text: ``_sqlite_pages``,
``_pg_pages``).

Keyset pages on the row seqs: turns through ``turns_by_thread (thread_id, seq)``, one
turn's items through ``items_by_turn (turn_seq, seq)``; a page is one index range walk of
``limit + 1`` entries whatever its depth, plus one ``items_by_turn`` lookup per turn when
items are wanted. A thread-wide item page walks the thread's turns and their items
(the items table has no thread column), which costs O(items of the thread).

A ``summary`` page (``summary_page``) reads per turn only its user messages and its last
agent message, through ``items_by_type (turn_seq, type, seq)``, and ``turn_state``
answers what loading a thread needs (crash-cut turns, the last turn's status) from the
turns table alone: neither reads the items they do not show.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from appserver.store._sql_common import SqlConn, turn_from_row
from appserver.store.base import TurnRecord, TurnStatus, UnknownItemAnchor
from appserver.store.pages import ItemEntry, ItemPage, Position, TurnPage, page_positions

__all__ = ["PagesSql", "item_page", "summary_page", "turn_page", "turn_state"]


@attrs.frozen(kw_only=True)
class PagesSql:
    """A dialect's statements; ``{where}`` / ``{order}`` are filled in per page."""

    #: the placeholder ("?" or "%s")
    p: str
    #: (turn_seq) -> body of its user messages, in order
    user_messages: str
    #: (turn_seq) -> body of its last agent message
    last_agent_message: str
    #: (thread_id) -> ids of its inProgress turns, in order
    running_turns: str
    #: (thread_id) -> its last turn's status
    last_status: str
    #: (thread_id, *where, limit) -> seq, id, status, error, started_at_ms, completed_at_ms
    turns: str
    #: (turn_seq) -> body, in order
    turn_items: str
    #: (thread_id, *where, limit) -> item seq, turn id, body
    thread_items: str
    #: (thread_id, turn_id) -> seq
    turn_seq: str
    #: (turn_seq, item_id) -> seq
    item_seq: str
    #: (turn_id, turn_seq, *where, limit) -> item seq, turn id, body
    one_turn_items: str


def _beyond(
    p: str, column: str, position: Position | None, descending: bool
) -> tuple[str, tuple[int, ...]]:
    if position is None:
        return "", ()
    op = ("<=" if descending else ">=") if position.inclusive else ("<" if descending else ">")
    return f" AND {column} {op} {p}", (position.seq,)


def _summary_items(
    conn: SqlConn, sql: PagesSql, turn_seq: int, status: str
) -> list[dict[str, Any]]:
    """The turn's user messages, then (completed turns) its last agent message."""
    bodies = [body for (body,) in conn.execute(sql.user_messages, (turn_seq,))]
    if status == "completed":
        final = conn.execute(sql.last_agent_message, (turn_seq,)).fetchone()
        if final is not None:
            bodies.append(final[0])
    return [json.loads(body) for body in bodies]


def turn_state(conn: SqlConn, sql: PagesSql, thread_id: str) -> tuple[list[str], TurnStatus | None]:
    """(ids of the thread's turns stored ``inProgress``, the last turn's status)."""
    running = [turn_id for (turn_id,) in conn.execute(sql.running_turns, (thread_id,))]
    last = conn.execute(sql.last_status, (thread_id,)).fetchone()
    return running, None if last is None else last[0]


def summary_page(
    conn: SqlConn,
    sql: PagesSql,
    thread_id: str,
    position: Position | None,
    descending: bool,
    limit: int,
) -> TurnPage:
    """``turn_page`` whose turns carry only their ``summary`` items (pages.summary_items)."""
    return turn_page(
        conn, sql, thread_id, position, descending, limit, with_items=False, summary=True
    )


def turn_page(
    conn: SqlConn,
    sql: PagesSql,
    thread_id: str,
    position: Position | None,
    descending: bool,
    limit: int,
    with_items: bool,
    *,
    summary: bool = False,
) -> TurnPage:
    where, args = _beyond(sql.p, "seq", position, descending)
    order = "DESC" if descending else "ASC"
    rows = conn.execute(
        sql.turns.format(where=where, order=order), (thread_id, *args, limit + 1)
    ).fetchall()
    next_cursor, backwards = page_positions("turns", thread_id, [r[0] for r in rows], limit)
    turns: list[TurnRecord] = []
    for seq, turn_id, status, error, started, completed in rows[:limit]:
        items = None
        if summary:
            items = _summary_items(conn, sql, seq, status)
        elif with_items:
            items = [json.loads(body) for (body,) in conn.execute(sql.turn_items, (seq,))]
        turns.append(turn_from_row(thread_id, turn_id, status, error, started, completed, items))
    return TurnPage(turns=turns, next_cursor=next_cursor, backwards_cursor=backwards)


def item_page(
    conn: SqlConn,
    sql: PagesSql,
    thread_id: str,
    position: Position | None,
    descending: bool,
    limit: int,
    turn_id: str | None,
    after_item: str | None,
) -> ItemPage:
    order = "DESC" if descending else "ASC"
    if turn_id is None:
        where, args = _beyond(sql.p, "i.seq", position, descending)
        statement = sql.thread_items.format(where=where, order=order)
        rows = conn.execute(statement, (thread_id, *args, limit + 1)).fetchall()
    else:
        found = conn.execute(sql.turn_seq, (thread_id, turn_id)).fetchone()
        if found is None:
            return ItemPage(items=[], next_cursor=None, backwards_cursor=None)
        (turn_seq,) = found
        if after_item is not None:
            anchor = conn.execute(sql.item_seq, (turn_seq, after_item)).fetchone()
            if anchor is None:
                raise UnknownItemAnchor(f"no item {after_item} in turn {turn_id}")
            position = Position(seq=anchor[0])
        where, args = _beyond(sql.p, "seq", position, descending)
        statement = sql.one_turn_items.format(where=where, order=order)
        rows = conn.execute(statement, (turn_id, turn_seq, *args, limit + 1)).fetchall()
    next_cursor, backwards = page_positions("items", thread_id, [r[0] for r in rows], limit)
    entries = [ItemEntry(turn_id=tid, item=json.loads(body)) for _, tid, body in rows[:limit]]
    return ItemPage(items=entries, next_cursor=next_cursor, backwards_cursor=backwards)
