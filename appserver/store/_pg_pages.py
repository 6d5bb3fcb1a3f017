"""PostgresStore's thread/turns/list and thread/items/list pages (``store/pages.py``),
the same queries as the SQLite store's (``_sqlite_pages``), described there:

Keyset pages on the row seqs: turns through ``turns_by_thread (thread_id, seq)``, one
turn's items through ``items_by_turn (turn_seq, seq)``; a page is one index range walk of
``limit + 1`` entries whatever its depth, plus one ``items_by_turn`` lookup per turn when
items are wanted. A thread-wide item page walks the thread's turns and their items
(the items table has no thread column), which costs O(items of the thread).

A ``summary`` page (``summary_page``) reads per turn only its user messages and its last
agent message, through ``items_by_type (turn_seq, type, seq)`` (schema 4), and
``turn_state`` answers what loading a thread needs (crash-cut turns, the last turn's
status) from the turns table alone: neither reads the items they do not show.
"""

from __future__ import annotations

import json
from typing import Any

from appserver.store._pg_conn import Conn
from appserver.store.base import TurnRecord, TurnStatus, UnknownItemAnchor
from appserver.store.pages import ItemEntry, ItemPage, Position, TurnPage, page_positions

__all__ = ["item_page", "summary_page", "turn_page", "turn_state"]


def _beyond(
    column: str, position: Position | None, descending: bool
) -> tuple[str, tuple[int, ...]]:
    if position is None:
        return "", ()
    op = ("<=" if descending else ">=") if position.inclusive else ("<" if descending else ">")
    return f" AND {column} {op} %s", (position.seq,)


def _summary_items(conn: Conn, turn_seq: int, status: str) -> list[dict[str, Any]]:
    """The turn's user messages, then (completed turns) its last agent message."""
    bodies = [
        body
        for (body,) in conn.execute(
            "SELECT body FROM items WHERE turn_seq = %s AND type = 'userMessage' ORDER BY seq",
            (turn_seq,),
        )
    ]
    if status == "completed":
        final = conn.execute(
            "SELECT body FROM items "
            "WHERE turn_seq = %s AND type = 'agentMessage' ORDER BY seq DESC LIMIT 1",
            (turn_seq,),
        ).fetchone()
        if final is not None:
            bodies.append(final[0])
    return [json.loads(body) for body in bodies]


def turn_state(conn: Conn, thread_id: str) -> tuple[list[str], TurnStatus | None]:
    """(ids of the thread's turns stored ``inProgress``, the last turn's status)."""
    running = [
        turn_id
        for (turn_id,) in conn.execute(
            "SELECT id FROM turns WHERE thread_id = %s AND status = 'inProgress' ORDER BY seq",
            (thread_id,),
        )
    ]
    last = conn.execute(
        "SELECT status FROM turns WHERE thread_id = %s ORDER BY seq DESC LIMIT 1",
        (thread_id,),
    ).fetchone()
    return running, None if last is None else last[0]


def summary_page(
    conn: Conn,
    thread_id: str,
    position: Position | None,
    descending: bool,
    limit: int,
) -> TurnPage:
    """``turn_page`` whose turns carry only their ``summary`` items (pages.summary_items)."""
    return turn_page(conn, thread_id, position, descending, limit, with_items=False, summary=True)


def turn_page(
    conn: Conn,
    thread_id: str,
    position: Position | None,
    descending: bool,
    limit: int,
    with_items: bool,
    *,
    summary: bool = False,
) -> TurnPage:
    where, args = _beyond("seq", position, descending)
    order = "DESC" if descending else "ASC"
    rows = conn.execute(
        "SELECT seq, id, status, error, started_at_ms, completed_at_ms FROM turns "
        f"WHERE thread_id = %s{where} ORDER BY seq {order} LIMIT %s",
        (thread_id, *args, limit + 1),
    ).fetchall()
    next_cursor, backwards = page_positions("turns", thread_id, [r[0] for r in rows], limit)
    turns: list[TurnRecord] = []
    for seq, turn_id, status, error, started, completed in rows[:limit]:
        items = []
        if summary:
            items = _summary_items(conn, seq, status)
        elif with_items:
            items = [
                json.loads(body)
                for (body,) in conn.execute(
                    "SELECT body FROM items WHERE turn_seq = %s ORDER BY seq", (seq,)
                )
            ]
        turns.append(
            TurnRecord(
                id=turn_id,
                thread_id=thread_id,
                status=status,
                error=None if error is None else json.loads(error),
                items=items,
                started_at_ms=started,
                completed_at_ms=completed,
            )
        )
    return TurnPage(turns=turns, next_cursor=next_cursor, backwards_cursor=backwards)


def item_page(
    conn: Conn,
    thread_id: str,
    position: Position | None,
    descending: bool,
    limit: int,
    turn_id: str | None,
    after_item: str | None,
) -> ItemPage:
    order = "DESC" if descending else "ASC"
    if turn_id is None:
        where, args = _beyond("i.seq", position, descending)
        sql = (
            "SELECT i.seq, t.id, i.body FROM turns t "
            "JOIN items i ON i.turn_seq = t.seq "
            f"WHERE t.thread_id = %s{where} ORDER BY i.seq {order} LIMIT %s"
        )
        rows = conn.execute(sql, (thread_id, *args, limit + 1)).fetchall()
    else:
        found = conn.execute(
            "SELECT seq FROM turns WHERE thread_id = %s AND id = %s", (thread_id, turn_id)
        ).fetchone()
        if found is None:
            return ItemPage(items=[], next_cursor=None, backwards_cursor=None)
        (turn_seq,) = found
        if after_item is not None:
            anchor = conn.execute(
                "SELECT seq FROM items WHERE turn_seq = %s AND id = %s", (turn_seq, after_item)
            ).fetchone()
            if anchor is None:
                raise UnknownItemAnchor(f"no item {after_item} in turn {turn_id}")
            position = Position(seq=anchor[0])
        where, args = _beyond("seq", position, descending)
        sql = (
            "SELECT seq, %s::text, body FROM items "
            f"WHERE turn_seq = %s{where} ORDER BY seq {order} LIMIT %s"
        )
        rows = conn.execute(sql, (turn_id, turn_seq, *args, limit + 1)).fetchall()
    next_cursor, backwards = page_positions("items", thread_id, [r[0] for r in rows], limit)
    entries = [ItemEntry(turn_id=tid, item=json.loads(body)) for _, tid, body in rows[:limit]]
    return ItemPage(items=entries, next_cursor=next_cursor, backwards_cursor=backwards)
