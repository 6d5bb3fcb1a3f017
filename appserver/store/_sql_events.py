"""The numbered event log of the SQL stores (PROTOCOL.md §13), written once over each
store's ``EventsSql`` (``_sqlite_events``, ``_pg_events``): per thread the seq high-water
mark (``event_marks``) and the recent events (``thread_events``), trimmed to the bounds
after each batch appended; ``event_log_totals`` keeps each log's size, so a trim reads
only the oldest rows it drops, never the whole log."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import attrs

from appserver.store._sql_common import Row, SqlConn
from appserver.store.base import EventSeqMark, LoggedEvent, StoreError

__all__ = ["EventsSql", "SqlEvents"]

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class EventsSql:
    """A dialect's event-log statements (all take the thread id first)."""

    get_mark: str
    put_mark: str
    last_seq: str
    totals: str
    count: str
    insert: str
    oldest: str
    delete_upto: str
    put_totals: str
    read: str
    #: executemany(conn, statement, rows)
    many: Callable[[SqlConn, str, Sequence[Row]], None]


def _totals(conn: SqlConn, sql: EventsSql, thread_id: str) -> tuple[int, int]:
    row = conn.execute(sql.totals, (thread_id,)).fetchone()
    if row is None:
        row = conn.execute(sql.count, (thread_id,)).fetchone()
    return int(row[0]), int(row[1])


def _append(
    conn: SqlConn,
    sql: EventsSql,
    thread_id: str,
    events: list[LoggedEvent],
    max_events: int,
    max_bytes: int,
) -> None:
    (last,) = conn.execute(sql.last_seq, (thread_id,)).fetchone() or (0,)
    for event in events:
        if event.seq <= last:
            raise StoreError(f"event {event.seq} is not after the logged ones ({last})")
        last = event.seq
    count, size = _totals(conn, sql, thread_id)
    rows = [(thread_id, e.seq, len(e.text.encode("utf-8")), e.text) for e in events]
    sql.many(conn, sql.insert, rows)
    count += len(rows)
    size += sum(row[2] for row in rows)
    if count > max_events or size > max_bytes:
        # Walk the oldest rows only as far as the ones to drop.
        cutoff = None
        oldest = conn.execute(sql.oldest, (thread_id,))
        for seq, row_bytes in oldest:
            if count <= max_events and size <= max_bytes:
                break
            cutoff, count, size = seq, count - 1, size - int(row_bytes)
        oldest.close()
        conn.execute(sql.delete_upto, (thread_id, cutoff))
    conn.execute(sql.put_totals, (thread_id, count, size))


class SqlEvents:
    """The event-log methods of the ThreadStore contract (store/base.py); mixed in
    after the store's connections class."""

    EVENTS_SQL: ClassVar[EventsSql]

    async def _write(self, fn: Callable[[Any], T], thread_id: str | None = None) -> T:
        raise NotImplementedError

    async def _read(self, fn: Callable[[Any], T]) -> T:
        raise NotImplementedError

    async def get_event_mark(self, thread_id: str) -> EventSeqMark:
        sql = self.EVENTS_SQL.get_mark

        def read(conn: SqlConn) -> EventSeqMark:
            row = conn.execute(sql, (thread_id,)).fetchone()
            if row is None:
                return EventSeqMark()
            return EventSeqMark(reserved=int(row[0]), clean=bool(row[1]))

        return await self._read(read)

    async def put_event_mark(self, thread_id: str, mark: EventSeqMark) -> None:
        sql = self.EVENTS_SQL.put_mark
        params = (thread_id, mark.reserved, bool(mark.clean))
        await self._write(lambda conn: conn.execute(sql, params), thread_id)

    async def append_events(
        self, thread_id: str, events: list[LoggedEvent], *, max_events: int, max_bytes: int
    ) -> None:
        if events:
            sql = self.EVENTS_SQL
            await self._write(
                lambda conn: _append(conn, sql, thread_id, events, max_events, max_bytes),
                thread_id,
            )

    async def read_events(self, thread_id: str, after_seq: int) -> list[LoggedEvent]:
        sql = self.EVENTS_SQL.read

        def read(conn: SqlConn) -> list[LoggedEvent]:
            rows = conn.execute(sql, (thread_id, after_seq)).fetchall()
            return [LoggedEvent(seq=int(seq), text=body) for seq, body in rows]

        return await self._read(read)
