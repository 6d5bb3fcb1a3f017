"""The numbered event log of ``PostgresStore`` (PROTOCOL.md §13, schema 2), as the
SQLite store's (``_sqlite_events``): per thread
the seq high-water mark (``event_marks``) and the recent events (``thread_events``),
trimmed to the bounds after each batch appended; ``event_log_totals`` keeps each log's
size, so a trim reads only the oldest rows it drops, never the whole log."""

from __future__ import annotations

from appserver.store._pg_conn import Conn, PgConnections
from appserver.store.base import EventSeqMark, LoggedEvent, StoreError


def _totals(conn: Conn, thread_id: str) -> tuple[int, int]:
    row = conn.execute(
        "SELECT events, bytes FROM event_log_totals WHERE thread_id = %s", (thread_id,)
    ).fetchone()
    if row is None:
        row = conn.execute(
            "SELECT count(*), coalesce(sum(bytes), 0) FROM thread_events WHERE thread_id = %s",
            (thread_id,),
        ).fetchone()
    assert row is not None  # an aggregate always has a row
    return int(row[0]), int(row[1])


def _append(
    conn: Conn,
    thread_id: str,
    events: list[LoggedEvent],
    max_events: int,
    max_bytes: int,
) -> None:
    (last,) = conn.execute(
        "SELECT coalesce(max(seq), 0) FROM thread_events WHERE thread_id = %s", (thread_id,)
    ).fetchone() or (0,)
    for event in events:
        if event.seq <= last:
            raise StoreError(f"event {event.seq} is not after the logged ones ({last})")
        last = event.seq
    count, size = _totals(conn, thread_id)
    rows = [(thread_id, e.seq, len(e.text.encode("utf-8")), e.text) for e in events]
    conn.cursor().executemany(
        "INSERT INTO thread_events (thread_id, seq, bytes, body) VALUES (%s, %s, %s, %s)", rows
    )
    count += len(rows)
    size += sum(row[2] for row in rows)
    if count > max_events or size > max_bytes:
        # Walk the oldest rows only as far as the ones to drop.
        cutoff = None
        oldest = conn.execute(
            "SELECT seq, bytes FROM thread_events WHERE thread_id = %s ORDER BY seq", (thread_id,)
        )
        for seq, row_bytes in oldest:
            if count <= max_events and size <= max_bytes:
                break
            cutoff, count, size = seq, count - 1, size - int(row_bytes)
        oldest.close()
        conn.execute(
            "DELETE FROM thread_events WHERE thread_id = %s AND seq <= %s", (thread_id, cutoff)
        )
    conn.execute(
        "INSERT INTO event_log_totals (thread_id, events, bytes) VALUES (%s, %s, %s) "
        "ON CONFLICT (thread_id) DO UPDATE SET events = excluded.events, bytes = excluded.bytes",
        (thread_id, count, size),
    )


class PgEvents(PgConnections):
    """The event-log methods of the ThreadStore contract (store/base.py)."""

    async def get_event_mark(self, thread_id: str) -> EventSeqMark:
        def read(conn: Conn) -> EventSeqMark:
            row = conn.execute(
                "SELECT reserved, clean FROM event_marks WHERE thread_id = %s", (thread_id,)
            ).fetchone()
            return (
                EventSeqMark()
                if row is None
                else EventSeqMark(reserved=int(row[0]), clean=bool(row[1]))
            )

        return await self._read(read)

    async def put_event_mark(self, thread_id: str, mark: EventSeqMark) -> None:
        def write(conn: Conn) -> None:
            conn.execute(
                "INSERT INTO event_marks (thread_id, reserved, clean) VALUES (%s, %s, %s) "
                "ON CONFLICT (thread_id) DO UPDATE SET reserved = excluded.reserved, "
                "clean = excluded.clean",
                (thread_id, mark.reserved, mark.clean),
            )

        await self._write(write)

    async def append_events(
        self, thread_id: str, events: list[LoggedEvent], *, max_events: int, max_bytes: int
    ) -> None:
        if events:
            await self._write(lambda conn: _append(conn, thread_id, events, max_events, max_bytes))

    async def read_events(self, thread_id: str, after_seq: int) -> list[LoggedEvent]:
        def read(conn: Conn) -> list[LoggedEvent]:
            rows = conn.execute(
                "SELECT seq, body FROM thread_events WHERE thread_id = %s AND seq > %s "
                "ORDER BY seq",
                (thread_id, after_seq),
            ).fetchall()
            return [LoggedEvent(seq=int(seq), text=body) for seq, body in rows]

        return await self._read(read)
