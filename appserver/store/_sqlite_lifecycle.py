"""SqliteStore's thread lifecycle writes: its SQL text and driver calls (the logic is
:mod:`._sql_lifecycle`). Injected items are schema 5; an item's ``type`` is a virtual
column derived from its JSON body (schema 4), so the item upsert does not write it."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Final

from appserver.store._sql_common import Row, SqlConn
from appserver.store._sql_lifecycle import LifecycleSql

__all__ = ["SQL"]


def _many(conn: SqlConn, statement: str, rows: Sequence[Row]) -> None:
    assert isinstance(conn, sqlite3.Connection)
    conn.executemany(statement, rows)


def _thread_tables(conn: SqlConn) -> list[str]:
    names = [
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return [
        name
        for name in names
        if any(row[1] == "thread_id" for row in conn.execute(f'PRAGMA table_info("{name}")'))
    ]


SQL: Final = LifecycleSql(
    thread_exists="SELECT 1 FROM threads WHERE id = ?",
    import_turn="INSERT INTO turns (thread_id, id, status, error, started_at_ms, "
    "completed_at_ms) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (thread_id, id) DO NOTHING "
    "RETURNING seq",
    upsert_item="INSERT INTO items (turn_seq, id, body) VALUES (?, ?, ?) "
    "ON CONFLICT (turn_seq, id) DO UPDATE SET body = excluded.body",
    item_type=False,
    many=_many,
    thread_tables=_thread_tables,
    delete_items="DELETE FROM items WHERE turn_seq IN (SELECT seq FROM turns WHERE thread_id = ?)",
    delete_rows='DELETE FROM "{table}" WHERE thread_id = ?',
    delete_thread="DELETE FROM threads WHERE id = ?",
    turn_seq="SELECT seq FROM turns WHERE thread_id = ? AND id = ?",
    delete_items_from="DELETE FROM items WHERE turn_seq IN "
    "(SELECT seq FROM turns WHERE thread_id = ? AND seq >= ?)",
    delete_turns_from="DELETE FROM turns WHERE thread_id = ? AND seq >= ?",
    delete_injected_from="DELETE FROM injected_items WHERE thread_id = ? AND after_turn_seq >= ?",
    last_turn="SELECT max(seq) FROM turns WHERE thread_id = ?",
    last_item="SELECT max(i.seq) FROM items i JOIN turns t ON i.turn_seq = t.seq "
    "WHERE t.thread_id = ?",
    insert_injected="INSERT INTO injected_items (thread_id, after_turn_seq, body) VALUES (?, ?, ?)",
    injected="SELECT t.id, j.body FROM injected_items j "
    "LEFT JOIN turns t ON t.seq = j.after_turn_seq WHERE j.thread_id = ? ORDER BY j.seq",
)
