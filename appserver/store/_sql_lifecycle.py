"""The thread lifecycle writes of the SQL stores, written once over each store's
``LifecycleSql`` (``_sqlite_lifecycle``, ``_pg_lifecycle``): a fork's copy, delete,
revert, injected items (thread/fork, thread/delete, thread/revert, thread/inject_items).
Each function runs inside the caller's transaction (``SqlStore``), which has found (and
where the database needs it locked) the thread row first.

Injected items are rows of ``injected_items (seq, thread_id, after_turn_seq, body)``:
``after_turn_seq`` is the seq of the thread's last turn when they were injected (0:
before any turn), so they keep their place among the turns and a revert that drops that
turn drops them too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from appserver.store._sql_common import Row, SqlConn
from appserver.store.base import InjectedItem, RevertedHistory, ThreadNotStored, TurnRecord
from appserver.store.cursor import dump_json, item_id
from appserver.store.errors import AlreadyStored, TurnNotStored
from appserver.store.pages import encode_position

__all__ = [
    "LifecycleSql",
    "delete_thread",
    "import_turns",
    "inject_items",
    "injected_items",
    "item_params",
    "revert_thread",
]


@attrs.frozen(kw_only=True)
class LifecycleSql:
    """A dialect's statements and driver calls for the lifecycle writes."""

    #: (thread_id) -> a row if stored
    thread_exists: str
    #: (thread_id, id, status, error, started, completed) -> seq; no row if it exists
    import_turn: str
    #: (turn_seq, id, [type,] body): upsert on (turn_seq, id)
    upsert_item: str
    #: whether ``upsert_item`` takes the item's type (else the database derives it)
    item_type: bool
    #: executemany(conn, statement, rows)
    many: Callable[[SqlConn, str, Sequence[Row]], None]
    #: (conn) -> the tables with a ``thread_id`` column whose rows thread/delete removes
    thread_tables: Callable[[SqlConn], list[str]]
    #: (thread_id): its items
    delete_items: str
    #: ``{table}``: (thread_id)
    delete_rows: str
    #: (thread_id)
    delete_thread: str
    #: (thread_id, turn_id) -> seq
    turn_seq: str
    #: (thread_id, from seq): items, turns, injected items from that turn on
    delete_items_from: str
    delete_turns_from: str
    delete_injected_from: str
    #: (thread_id) -> max turn seq / max item seq (NULL: none)
    last_turn: str
    last_item: str
    #: (thread_id, after_turn_seq, body)
    insert_injected: str
    #: (thread_id) -> after turn id (NULL: before any turn), body
    injected: str


def _item_type(item: dict[str, Any]) -> str | None:
    value = item.get("type")
    return value if isinstance(value, str) else None


def item_params(sql: LifecycleSql, turn_seq: int, item: dict[str, Any]) -> Row:
    """``upsert_item``'s parameters for ``item``."""
    if sql.item_type:
        return (turn_seq, item_id(item), _item_type(item), dump_json(item))
    return (turn_seq, item_id(item), dump_json(item))


def _exists(conn: SqlConn, sql: LifecycleSql, thread_id: str) -> None:
    if conn.execute(sql.thread_exists, (thread_id,)).fetchone() is None:
        raise ThreadNotStored(f"thread {thread_id} is not stored")


def import_turns(conn: SqlConn, sql: LifecycleSql, thread_id: str, turns: list[TurnRecord]) -> None:
    """Store ``turns`` (with their items, ids kept) as the history of a new thread."""
    for turn in turns:
        error = None if turn.error is None else dump_json(turn.error)
        row = conn.execute(
            sql.import_turn,
            (thread_id, turn.id, turn.status, error, turn.started_at_ms, turn.completed_at_ms),
        ).fetchone()
        if row is None:
            raise AlreadyStored(f"turn {turn.id} of thread {thread_id} is already stored")
        if turn.items:
            sql.many(conn, sql.upsert_item, [item_params(sql, row[0], i) for i in turn.items])


def delete_thread(conn: SqlConn, sql: LifecycleSql, thread_id: str) -> bool:
    """Remove the thread and every row about it; False if it was not stored."""
    if conn.execute(sql.thread_exists, (thread_id,)).fetchone() is None:
        return False
    conn.execute(sql.delete_items, (thread_id,))
    found = sql.thread_tables(conn)
    last = [name for name in ("turns", "thread_settings") if name in found]
    for table in [name for name in found if name not in last] + last:
        conn.execute(sql.delete_rows.format(table=table), (thread_id,))
    conn.execute(sql.delete_thread, (thread_id,))
    return True


def revert_thread(
    conn: SqlConn, sql: LifecycleSql, thread_id: str, before_turn_id: str
) -> RevertedHistory:
    """Drop ``before_turn_id``, every later turn, their items and the items injected
    after them; return the backwards cursors of what is left."""
    _exists(conn, sql, thread_id)
    row = conn.execute(sql.turn_seq, (thread_id, before_turn_id)).fetchone()
    if row is None:
        raise TurnNotStored(f"turn {before_turn_id} of thread {thread_id} is not stored")
    (before_seq,) = row
    for statement in (sql.delete_items_from, sql.delete_turns_from, sql.delete_injected_from):
        conn.execute(statement, (thread_id, before_seq))
    (last_turn,) = conn.execute(sql.last_turn, (thread_id,)).fetchone() or (None,)
    last_item = None
    if last_turn is not None:
        (last_item,) = conn.execute(sql.last_item, (thread_id,)).fetchone() or (None,)
    return RevertedHistory(
        turns_backwards_cursor=None
        if last_turn is None
        else encode_position("turns", thread_id, last_turn, inclusive=True),
        items_backwards_cursor=None
        if last_item is None
        else encode_position("items", thread_id, last_item, inclusive=True),
    )


def inject_items(conn: SqlConn, sql: LifecycleSql, thread_id: str, items: list[Any]) -> None:
    """Inject ``items`` after the thread's last turn (the caller found the thread)."""
    (last_turn,) = conn.execute(sql.last_turn, (thread_id,)).fetchone() or (None,)
    after = 0 if last_turn is None else last_turn
    sql.many(conn, sql.insert_injected, [(thread_id, after, dump_json(i)) for i in items])


def injected_items(conn: SqlConn, sql: LifecycleSql, thread_id: str) -> list[InjectedItem]:
    return [
        InjectedItem(after_turn_id=turn_id, item=json.loads(body))
        for turn_id, body in conn.execute(sql.injected, (thread_id,))
    ]
