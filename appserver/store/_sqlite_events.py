"""The numbered event log of ``SqliteStore`` (PROTOCOL.md §13, schema 6): its SQL text
(the logic, shared with the PostgreSQL store, is :mod:`._sql_events`)."""

from __future__ import annotations

from typing import Final

from appserver.store._sql_events import EventsSql
from appserver.store._sqlite_lifecycle import SQL as LIFECYCLE

__all__ = ["SQL"]

SQL: Final = EventsSql(
    get_mark="SELECT reserved, clean FROM event_marks WHERE thread_id = ?",
    put_mark="INSERT INTO event_marks (thread_id, reserved, clean) VALUES (?, ?, ?) "
    "ON CONFLICT (thread_id) DO UPDATE SET reserved = excluded.reserved, "
    "clean = excluded.clean",
    last_seq="SELECT coalesce(max(seq), 0) FROM thread_events WHERE thread_id = ?",
    totals="SELECT events, bytes FROM event_log_totals WHERE thread_id = ?",
    count="SELECT count(*), coalesce(sum(bytes), 0) FROM thread_events WHERE thread_id = ?",
    insert="INSERT INTO thread_events (thread_id, seq, bytes, body) VALUES (?, ?, ?, ?)",
    oldest="SELECT seq, bytes FROM thread_events WHERE thread_id = ? ORDER BY seq",
    delete_upto="DELETE FROM thread_events WHERE thread_id = ? AND seq <= ?",
    put_totals="INSERT INTO event_log_totals (thread_id, events, bytes) VALUES (?, ?, ?) "
    "ON CONFLICT (thread_id) DO UPDATE SET events = excluded.events, bytes = excluded.bytes",
    read="SELECT seq, body FROM thread_events WHERE thread_id = ? AND seq > ? ORDER BY seq",
    many=LIFECYCLE.many,
)
