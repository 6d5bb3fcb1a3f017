"""What the SQLite and PostgreSQL stores share around their SQL: the connection shape both
drivers (sqlite3, psycopg 3) present, and the row → record mappings. Each store keeps
its dialect (SQL text, placeholders, driver calls) in its own modules (``_sqlite_*``,
``_pg_*``); the logic written once is in ``_sql_pages`` (turn and item pages),
``_sql_list`` (thread/list keyset pages), ``_sql_events`` (the event log's trimming),
``_sql_lifecycle`` (import, revert, injected items) and ``_sql_store`` (the ThreadStore
methods)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Protocol

from appserver.store.base import ThreadRecord, TurnRecord
from appserver.store.cursor import fold

__all__ = ["Row", "SqlConn", "SqlCursor", "thread_from_row", "thread_params", "turn_from_row"]

Row = tuple[Any, ...]


class SqlCursor(Protocol):
    """What both drivers' ``execute`` returns."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...

    def close(self) -> None: ...


class SqlConn(Protocol):
    """A sqlite3 or psycopg connection, inside the caller's transaction."""

    def execute(self, query: str, params: Any = ..., /) -> SqlCursor: ...


def thread_from_row(row: Row) -> ThreadRecord:
    """A thread from the store's ``COLUMNS`` (``_sqlite_list`` / ``_pg_list``)."""
    return ThreadRecord(
        id=row[0],
        preview=row[1],
        name=row[2],
        model_provider=row[3],
        model=row[4],
        cwd=row[5],
        created_at=int(row[6]),
        updated_at=int(row[7]),
        recency_at=int(row[8]),
        archived=bool(row[9]),
        settings=json.loads(row[10]),
    )


def turn_from_row(
    thread_id: str,
    turn_id: str,
    status: Any,
    error: str | None,
    started: int | None,
    completed: int | None,
    items: list[dict[str, Any]] | None = None,
) -> TurnRecord:
    """A turn from its row (``error`` is JSON text)."""
    return TurnRecord(
        id=turn_id,
        thread_id=thread_id,
        status=status,
        error=None if error is None else json.loads(error),
        items=[] if items is None else items,
        started_at_ms=started,
        completed_at_ms=completed,
    )


def thread_params(record: ThreadRecord) -> Row:
    """The insert parameters of ``record``: (id, preview, name, model_provider, model,
    cwd, created_at, updated_at, recency_at, archived, preview_fold, name_fold)."""
    return (
        record.id,
        record.preview,
        record.name,
        record.model_provider,
        record.model,
        record.cwd,
        record.created_at,
        record.updated_at,
        record.recency_at,
        bool(record.archived),
        fold(record.preview),
        None if record.name is None else fold(record.name),
    )
