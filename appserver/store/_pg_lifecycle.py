"""PostgresStore's thread lifecycle writes: its SQL text and driver calls (the logic,
shared with the SQLite store, is :mod:`._sql_lifecycle`). An item's ``type`` is a column
written with it (kept out of JSON casts: jsonb refuses the \\u0000 and lone-surrogate
escapes an item may hold). thread/delete leaves the cluster's tables alone
(``_pg_schema.CLUSTER_TABLES``: a lease and the forwarded calls are the cluster's to
end)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import psycopg

from appserver.store._pg_schema import CLUSTER_TABLES
from appserver.store._sql_common import Row, SqlConn
from appserver.store._sql_lifecycle import LifecycleSql

__all__ = ["SQL"]


def _many(conn: SqlConn, statement: str, rows: Sequence[Row]) -> None:
    assert isinstance(conn, psycopg.Connection)
    conn.cursor().executemany(statement, rows)


def _thread_tables(conn: SqlConn) -> list[str]:
    return [
        name
        for (name,) in conn.execute(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND column_name = 'thread_id' "
            "ORDER BY table_name"
        )
        if name not in CLUSTER_TABLES
    ]


SQL: Final = LifecycleSql(
    thread_exists="SELECT 1 FROM threads WHERE id = %s",
    import_turn="INSERT INTO turns (thread_id, id, status, error, started_at_ms, "
    "completed_at_ms) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (thread_id, id) DO NOTHING "
    "RETURNING seq",
    upsert_item="INSERT INTO items (turn_seq, id, type, body) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (turn_seq, id) DO UPDATE SET type = excluded.type, body = excluded.body",
    item_type=True,
    many=_many,
    thread_tables=_thread_tables,
    delete_items="DELETE FROM items WHERE turn_seq IN (SELECT seq FROM turns WHERE thread_id = %s)",
    delete_rows='DELETE FROM "{table}" WHERE thread_id = %s',
    delete_thread="DELETE FROM threads WHERE id = %s",
    turn_seq="SELECT seq FROM turns WHERE thread_id = %s AND id = %s",
    delete_items_from="DELETE FROM items WHERE turn_seq IN "
    "(SELECT seq FROM turns WHERE thread_id = %s AND seq >= %s)",
    delete_turns_from="DELETE FROM turns WHERE thread_id = %s AND seq >= %s",
    delete_injected_from="DELETE FROM injected_items WHERE thread_id = %s AND after_turn_seq >= %s",
    last_turn="SELECT max(seq) FROM turns WHERE thread_id = %s",
    last_item="SELECT max(i.seq) FROM items i JOIN turns t ON i.turn_seq = t.seq "
    "WHERE t.thread_id = %s",
    insert_injected="INSERT INTO injected_items (thread_id, after_turn_seq, body) "
    "VALUES (%s, %s, %s)",
    injected="SELECT t.id, j.body FROM injected_items j "
    "LEFT JOIN turns t ON t.seq = j.after_turn_seq WHERE j.thread_id = %s ORDER BY j.seq",
)
