"""thread/list for SqliteStore: one keyset page, in the reader's transaction.

See :mod:`appserver.store.sqlite` for the design (indexes, the updated_at snapshot).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Final

from appserver.store.base import InvalidCursor, ListQuery, ThreadRecord
from appserver.store.cursor import Cursor, encode_cursor, fold, is_utf8

__all__ = ["COLUMNS", "list_page", "thread_from_row"]

Row = tuple[Any, ...]

COLUMNS: Final = (
    "t.id, t.preview, t.name, t.model_provider, t.model, t.cwd, "
    "t.created_at, t.updated_at, t.archived, "
    "(SELECT s.settings FROM thread_settings s WHERE s.thread_id = t.id)"
)


def thread_from_row(row: Row) -> ThreadRecord:
    return ThreadRecord(
        id=row[0],
        preview=row[1],
        name=row[2],
        model_provider=row[3],
        model=row[4],
        cwd=row[5],
        created_at=row[6],
        updated_at=row[7],
        archived=bool(row[8]),
        settings=json.loads(row[9]),
    )


def _filters(query: ListQuery) -> tuple[str, list[Any]] | None:
    """SQL conditions on ``t`` for the query's filters; None if nothing can match."""
    strings = [query.cwd or "", query.search_term or "", *query.model_providers]
    if not all(is_utf8(s) for s in strings):
        return None  # stored text is always valid UTF-8
    clauses = ["t.archived = ?"]
    params: list[Any] = [int(query.archived)]
    if query.cwd is not None:
        clauses.append("t.cwd = ?")
        params.append(query.cwd)
    if query.search_term:
        clauses.append("(instr(t.preview_fold, ?) > 0 OR instr(t.name_fold, ?) > 0)")
        params += [fold(query.search_term)] * 2
    if query.model_providers:
        clauses.append(f"t.model_provider IN ({', '.join('?' * len(query.model_providers))})")
        params += query.model_providers
    return " AND ".join(clauses), params


def list_page(
    conn: sqlite3.Connection, query: ListQuery, cursor: Cursor | None
) -> tuple[list[ThreadRecord], str | None]:
    """One page of ``query`` after ``cursor`` (already decoded), and the next cursor."""
    change_seq, pruned_seq = conn.execute(
        "SELECT change_seq, pruned_seq FROM store_state WHERE id = 1"
    ).fetchone()
    snapshot: int = change_seq
    if cursor is not None:
        if cursor.snapshot > change_seq:
            raise InvalidCursor("invalid cursor: not issued by this store")
        if query.sort_key == "updated_at" and cursor.snapshot < pruned_seq:
            raise InvalidCursor("invalid cursor: expired, start paging again")
        snapshot = cursor.snapshot
    filters = _filters(query)
    if filters is None:
        return [], None
    where, params = filters
    key = query.sort_key
    limit = max(1, query.limit)
    after: list[Any] = [] if cursor is None else [cursor.key, cursor.id]
    keyset = "" if cursor is None else f" AND (t.{key}, t.id) < (?, ?)"
    unchanged = "" if key == "created_at" else " AND t.key_seq <= ?"
    rows = conn.execute(
        f"SELECT {COLUMNS}, t.{key} FROM threads t WHERE {where}{unchanged}{keyset} "
        f"ORDER BY t.{key} DESC, t.id DESC LIMIT ?",
        [*params, *([snapshot] if unchanged else []), *after, limit + 1],
    ).fetchall()
    if key == "updated_at" and snapshot < change_seq:
        # threads whose updated_at changed since the snapshot, at their old position
        keyset = "" if cursor is None else " AND (h.old_updated_at, h.thread_id) < (?, ?)"
        rows += conn.execute(
            f"SELECT {COLUMNS}, h.old_updated_at FROM thread_history h "
            "CROSS JOIN threads t ON t.id = h.thread_id "  # history drives the join
            "WHERE h.seq > ? AND NOT EXISTS (SELECT 1 FROM thread_history e "
            "WHERE e.thread_id = h.thread_id AND e.seq > ? AND e.seq < h.seq) "
            f"AND {where}{keyset} "
            "ORDER BY h.old_updated_at DESC, h.thread_id DESC LIMIT ?",
            [snapshot, snapshot, *params, *after, limit + 1],
        ).fetchall()
        rows.sort(key=lambda row: (row[-1], row[0]), reverse=True)
    page = [thread_from_row(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(
            Cursor(sort_key=key, key=last[-1], id=last[0], snapshot=snapshot)
        )
    return page, next_cursor
