"""thread/list for PostgresStore: one keyset page, in the reader's REPEATABLE READ
transaction. The same algorithm and cursor guarantees as the SQLite store (the long
description is in :mod:`appserver.store._sqlite_list`): keyset paging on (sort key, id)
through the ``(archived, key, id)`` and ``(archived, cwd, key, id)`` indexes; for the
mutable keys (updated_at, recency_at) every later page follows the order as of the
first page's ``change_seq`` snapshot, merging unchanged threads (``key_seq <= S``) with
changed ones at their old position from ``thread_history``.
"""

from __future__ import annotations

import json
from typing import Any, Final

from appserver.store._pg_conn import Conn
from appserver.store.base import InvalidCursor, ListQuery, ThreadPage, ThreadRecord
from appserver.store.cursor import Cursor, fold, is_utf8, page_cursors

__all__ = ["COLUMNS", "list_page", "thread_from_row"]

Row = tuple[Any, ...]

COLUMNS: Final = (
    "t.id, t.preview, t.name, t.model_provider, t.model, t.cwd, "
    "t.created_at, t.updated_at, t.recency_at, t.archived, "
    "(SELECT s.settings FROM thread_settings s WHERE s.thread_id = t.id)"
)

#: Up to this many ``cwd`` values, each gets its own index walk (merged here).
MAX_CWD_WALKS: Final = 8


def thread_from_row(row: Row) -> ThreadRecord:
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


def _utf8(values: tuple[str, ...]) -> list[str]:
    """Distinct values that can match: stored text is always valid UTF-8 (and no NUL)."""
    return sorted({value for value in values if is_utf8(value) and "\0" not in value})


def _filters(query: ListQuery) -> list[tuple[str, list[Any]]] | None:
    """SQL conditions on ``t``, one per index walk to run; None if nothing can match."""
    clauses = ["t.archived = %s"]
    params: list[Any] = [query.archived]
    if query.included_ids is not None:
        included = _utf8(query.included_ids)
        if not included:
            return None
        clauses.append("t.id = ANY(%s)")
        params.append(included)
    excluded = _utf8(query.excluded_ids)
    if excluded:
        clauses.append("NOT (t.id = ANY(%s))")
        params.append(excluded)
    if query.search_term:
        if not _utf8((query.search_term,)):
            return None
        clauses.append("(strpos(t.preview_fold, %s) > 0 OR strpos(t.name_fold, %s) > 0)")
        params += [fold(query.search_term)] * 2
    if query.model_providers:
        providers = _utf8(query.model_providers)
        if not providers:
            return None
        clauses.append("t.model_provider = ANY(%s)")
        params.append(providers)
    cwds = query.cwds()
    if cwds is None:
        return [(" AND ".join(clauses), params)]
    values = _utf8(cwds)
    if not values:
        return None
    if len(values) > MAX_CWD_WALKS:
        return [(" AND ".join([*clauses, "t.cwd = ANY(%s)"]), [*params, values])]
    return [(" AND ".join([*clauses, "t.cwd = %s"]), [*params, cwd]) for cwd in values]


def _keyset(
    key: str, id_column: str, cursor: Cursor | None, descending: bool
) -> tuple[str, list[Any]]:
    if cursor is None:
        return "", []
    cmp = "<" if descending else ">"
    if cursor.id is None:  # an inclusive anchor (backwards cursor)
        return f" AND {key} {cmp}= %s", [cursor.key]
    return f" AND ({key}, {id_column}) {cmp} (%s, %s)", [cursor.key, cursor.id]


def _walk(
    conn: Conn,
    where: str,
    params: list[Any],
    query: ListQuery,
    cursor: Cursor | None,
    snapshot: int,
    change_seq: int,
    limit: int,
) -> list[Row]:
    key = query.sort_key
    mutable = key != "created_at"
    descending = query.direction == "desc"
    order = "DESC" if descending else "ASC"
    keyset, after = _keyset(f"t.{key}", "t.id", cursor, descending)
    unchanged = " AND t.key_seq <= %s" if mutable else ""
    rows: list[Row] = conn.execute(
        f"SELECT {COLUMNS}, t.{key} FROM threads t WHERE {where}{unchanged}{keyset} "
        f"ORDER BY t.{key} {order}, t.id {order} LIMIT %s",
        [*params, *([snapshot] if mutable else []), *after, limit + 1],
    ).fetchall()
    if mutable and snapshot < change_seq:
        keyset, after = _keyset(f"h.old_{key}", "h.thread_id", cursor, descending)
        rows += conn.execute(
            f"SELECT {COLUMNS}, h.old_{key} FROM thread_history h "
            "JOIN threads t ON t.id = h.thread_id "
            "WHERE h.seq > %s AND NOT EXISTS (SELECT 1 FROM thread_history e "
            "WHERE e.thread_id = h.thread_id AND e.seq > %s AND e.seq < h.seq) "
            f"AND {where}{keyset} "
            f"ORDER BY h.old_{key} {order}, h.thread_id {order} LIMIT %s",
            [snapshot, snapshot, *params, *after, limit + 1],
        ).fetchall()
    return rows


def list_page(conn: Conn, query: ListQuery, cursor: Cursor | None) -> ThreadPage:
    """One page of ``query`` from ``cursor`` (already decoded), with its cursors."""
    change_seq, pruned_seq = conn.execute(
        "SELECT change_seq, pruned_seq FROM store_state WHERE id = 1"
    ).fetchone() or (0, 0)
    key = query.sort_key
    mutable = key != "created_at"
    snapshot = int(change_seq)
    if cursor is not None:
        if cursor.snapshot > change_seq:
            raise InvalidCursor("invalid cursor: not issued by this store")
        if mutable and cursor.snapshot < pruned_seq:
            raise InvalidCursor("invalid cursor: expired, start paging again")
        snapshot = cursor.snapshot
    walks = _filters(query)
    if walks is None:
        return ThreadPage(threads=[], next_cursor=None, backwards_cursor=None)
    descending = query.direction == "desc"
    limit = max(1, query.limit)
    rows: list[Row] = []
    for where, params in walks:
        rows += _walk(conn, where, params, query, cursor, snapshot, int(change_seq), limit)
    if len(walks) > 1 or (mutable and snapshot < change_seq):
        rows.sort(key=lambda row: (row[-1], row[0]), reverse=descending)
        del rows[limit + 1 :]
    pairs = [(int(row[-1]), str(row[0])) for row in rows]
    next_cursor, backwards = page_cursors(pairs, limit, key, snapshot)
    return ThreadPage(
        threads=[thread_from_row(row) for row in rows[:limit]],
        next_cursor=next_cursor,
        backwards_cursor=backwards,
    )
