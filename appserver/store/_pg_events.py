"""The numbered event log of ``PostgresStore`` (PROTOCOL.md §13, schema 2): its SQL text
(the logic, shared with the SQLite store, is :mod:`._sql_events`)."""

from __future__ import annotations

from typing import Final

from appserver.store._pg_lifecycle import SQL as LIFECYCLE
from appserver.store._sql_events import EventsSql

__all__ = ["SQL"]

SQL: Final = EventsSql(
    get_mark="SELECT reserved, clean FROM event_marks WHERE thread_id = %s",
    put_mark="INSERT INTO event_marks (thread_id, reserved, clean) VALUES (%s, %s, %s) "
    "ON CONFLICT (thread_id) DO UPDATE SET reserved = excluded.reserved, "
    "clean = excluded.clean",
    last_seq="SELECT coalesce(max(seq), 0) FROM thread_events WHERE thread_id = %s",
    totals="SELECT events, bytes FROM event_log_totals WHERE thread_id = %s",
    count="SELECT count(*), coalesce(sum(bytes), 0) FROM thread_events WHERE thread_id = %s",
    insert="INSERT INTO thread_events (thread_id, seq, bytes, body) VALUES (%s, %s, %s, %s)",
    oldest="SELECT seq, bytes FROM thread_events WHERE thread_id = %s ORDER BY seq",
    delete_upto="DELETE FROM thread_events WHERE thread_id = %s AND seq <= %s",
    put_totals="INSERT INTO event_log_totals (thread_id, events, bytes) VALUES (%s, %s, %s) "
    "ON CONFLICT (thread_id) DO UPDATE SET events = excluded.events, bytes = excluded.bytes",
    read="SELECT seq, body FROM thread_events WHERE thread_id = %s AND seq > %s ORDER BY seq",
    many=LIFECYCLE.many,
)
