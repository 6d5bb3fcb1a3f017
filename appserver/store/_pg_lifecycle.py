"""PostgresStore's thread lifecycle writes, as the SQLite store's (``_sqlite_lifecycle``):
a fork's copy, delete, revert, injected items (thread/fork, thread/delete, thread/revert,
thread/inject_items). Each function runs inside the caller's transaction
(``PgConnections._write`` / ``_read``), which has locked the thread row first.

Injected items are rows of ``injected_items (seq, thread_id, after_turn_seq,
body)``: ``after_turn_seq`` is the seq of the thread's last turn when they were injected
(0: before any turn), so they keep their place among the turns and a revert that drops
that turn drops them too.
"""

from __future__ import annotations

import json
from typing import Any

from appserver.store._pg_conn import Conn
from appserver.store.base import InjectedItem, RevertedHistory, ThreadNotStored, TurnRecord
from appserver.store.cursor import dump_json, item_id
from appserver.store.errors import AlreadyStored, TurnNotStored
from appserver.store.pages import encode_position

UPSERT_ITEM_SQL = (
    "INSERT INTO items (turn_seq, id, type, body) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (turn_seq, id) DO UPDATE SET type = excluded.type, body = excluded.body"
)


def item_type(item: dict[str, Any]) -> str | None:
    """The item's ``type`` column (what summary pages select on)."""
    value = item.get("type")
    return value if isinstance(value, str) else None


__all__ = [
    "UPSERT_ITEM_SQL",
    "delete_thread",
    "import_turns",
    "inject_items",
    "injected_items",
    "item_type",
    "revert_thread",
]


def _exists(conn: Conn, thread_id: str) -> None:
    if conn.execute("SELECT 1 FROM threads WHERE id = %s", (thread_id,)).fetchone() is None:
        raise ThreadNotStored(f"thread {thread_id} is not stored")


def import_turns(conn: Conn, thread_id: str, turns: list[TurnRecord]) -> None:
    """Store ``turns`` (with their items, ids kept) as the history of a new thread."""
    for turn in turns:
        row = conn.execute(
            "INSERT INTO turns (thread_id, id, status, error, started_at_ms, completed_at_ms) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (thread_id, id) DO NOTHING "
            "RETURNING seq",
            (
                thread_id,
                turn.id,
                turn.status,
                None if turn.error is None else dump_json(turn.error),
                turn.started_at_ms,
                turn.completed_at_ms,
            ),
        ).fetchone()
        if row is None:
            raise AlreadyStored(f"turn {turn.id} of thread {thread_id} is already stored")
        if turn.items:
            conn.cursor().executemany(
                UPSERT_ITEM_SQL,
                [(row[0], item_id(item), item_type(item), dump_json(item)) for item in turn.items],
            )


def _tables_with_thread_rows(conn: Conn) -> list[str]:
    """Every table of the schema with a ``thread_id`` column, the turns and settings
    last (rows of the others may refer to them)."""
    found = [
        name
        for (name,) in conn.execute(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND column_name = 'thread_id' "
            "ORDER BY table_name"
        )
    ]
    last = [name for name in ("turns", "thread_settings") if name in found]
    return [name for name in found if name not in last] + last


def delete_thread(conn: Conn, thread_id: str) -> bool:
    """Remove the thread and every row about it; False if it was not stored."""
    if conn.execute("SELECT 1 FROM threads WHERE id = %s", (thread_id,)).fetchone() is None:
        return False
    conn.execute(
        "DELETE FROM items WHERE turn_seq IN (SELECT seq FROM turns WHERE thread_id = %s)",
        (thread_id,),
    )
    for table in _tables_with_thread_rows(conn):
        conn.execute(f'DELETE FROM "{table}" WHERE thread_id = %s', (thread_id,))
    conn.execute("DELETE FROM threads WHERE id = %s", (thread_id,))
    return True


def revert_thread(conn: Conn, thread_id: str, before_turn_id: str) -> RevertedHistory:
    """Drop ``before_turn_id``, every later turn, their items and the items injected
    after them; return the backwards cursors of what is left."""
    _exists(conn, thread_id)
    row = conn.execute(
        "SELECT seq FROM turns WHERE thread_id = %s AND id = %s", (thread_id, before_turn_id)
    ).fetchone()
    if row is None:
        raise TurnNotStored(f"turn {before_turn_id} of thread {thread_id} is not stored")
    (before_seq,) = row
    conn.execute(
        "DELETE FROM items WHERE turn_seq IN "
        "(SELECT seq FROM turns WHERE thread_id = %s AND seq >= %s)",
        (thread_id, before_seq),
    )
    conn.execute("DELETE FROM turns WHERE thread_id = %s AND seq >= %s", (thread_id, before_seq))
    conn.execute(
        "DELETE FROM injected_items WHERE thread_id = %s AND after_turn_seq >= %s",
        (thread_id, before_seq),
    )
    (last_turn,) = conn.execute(
        "SELECT max(seq) FROM turns WHERE thread_id = %s", (thread_id,)
    ).fetchone() or (None,)
    last_item = None
    if last_turn is not None:
        (last_item,) = conn.execute(
            "SELECT max(i.seq) FROM items i JOIN turns t ON i.turn_seq = t.seq "
            "WHERE t.thread_id = %s",
            (thread_id,),
        ).fetchone() or (None,)
    return RevertedHistory(
        turns_backwards_cursor=None
        if last_turn is None
        else encode_position("turns", thread_id, last_turn, inclusive=True),
        items_backwards_cursor=None
        if last_item is None
        else encode_position("items", thread_id, last_item, inclusive=True),
    )


def inject_items(conn: Conn, thread_id: str, items: list[Any]) -> None:
    _exists(conn, thread_id)
    (last_turn,) = conn.execute(
        "SELECT coalesce(max(seq), 0) FROM turns WHERE thread_id = %s", (thread_id,)
    ).fetchone() or (0,)
    conn.cursor().executemany(
        "INSERT INTO injected_items (thread_id, after_turn_seq, body) VALUES (%s, %s, %s)",
        [(thread_id, last_turn, dump_json(item)) for item in items],
    )


def injected_items(conn: Conn, thread_id: str) -> list[InjectedItem]:
    return [
        InjectedItem(after_turn_id=turn_id, item=json.loads(body))
        for turn_id, body in conn.execute(
            "SELECT t.id, j.body FROM injected_items j "
            "LEFT JOIN turns t ON t.seq = j.after_turn_seq "
            "WHERE j.thread_id = %s ORDER BY j.seq",
            (thread_id,),
        )
    ]
