"""thread/list for SqliteStore: one keyset page, in the reader's transaction (cursor
positions: :mod:`appserver.store.cursor`).

thread/list is keyset-paginated on (sort key, id), descending or
ascending, through the indexes ``(archived, key, id, ...)`` and ``(archived, cwd, key,
id)`` for each key (created_at, updated_at, recency_at): a page is one index range walk
of about ``limit`` entries whatever its depth, in either direction; no OFFSET, no sort.
``includedThreadIds`` is a primary-key lookup of at most 100 rows (then sorted);
``excludedThreadIds`` and several ``cwd`` values filter entries during the walk.
``searchTerm`` (substring of the casefolded preview/name columns) and
``modelProviders`` filter entries during the walk, so a rare term walks further (the
fold columns are in the index so that walk does not read the table: ~8 ms for a 0.1%
term at 100k threads).

Stable cursors. ``created_at`` never changes, so plain keyset paging neither repeats nor
skips. ``updated_at`` and ``recency_at`` do change, so every change of either bumps a
global ``change_seq`` and appends ``(seq, thread_id, previous updated_at, previous
recency_at)`` to ``thread_history``; the thread row keeps the seq of its last change
(``key_seq``). What follows for updated_at holds for recency_at alike. The
first page records the current ``change_seq`` (the snapshot ``S``) in its cursor, and
every later page orders each thread by its updated_at *as of S*: the current value if
``key_seq <= S``, else the ``previous updated_at`` of its first history entry after
``S`` (threads created after S count with the updated_at they were created with). A
page is the merge of two keyset queries: unchanged threads via the index, and changed
ones via the history rows after S. So the whole walk follows one frozen order, and no
thread that existed at S is repeated or skipped; a backwards cursor carries the same S,
so walking back from any page follows that order too. Filters (archived, name/preview
search) apply to the current state: a thread archived mid-walk leaves an unarchived
listing. History older than ``history_retention_seconds`` (default 24 h) is pruned; an
updated_at cursor whose needed history is gone raises ``InvalidCursor`` ("expired"), so a
walk is guaranteed stable for at least 24 h. Cost of a later page grows with the number
of updates since S (one history scan), which is small for any realistic walk.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Final

from appserver.store.base import InvalidCursor, ListQuery, ThreadPage, ThreadRecord
from appserver.store.cursor import Cursor, fold, is_utf8, page_cursors

__all__ = ["COLUMNS", "list_page", "thread_from_row"]

Row = tuple[Any, ...]

COLUMNS: Final = (
    "t.id, t.preview, t.name, t.model_provider, t.model, t.cwd, "
    "t.created_at, t.updated_at, t.recency_at, t.archived, "
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
        recency_at=row[8],
        archived=bool(row[9]),
        settings=json.loads(row[10]),
    )


def _in(column: str, values: list[str], *, negate: bool = False) -> str:
    if len(values) == 1:
        return f"{column} {'!=' if negate else '='} ?"
    return f"{column} {'NOT IN' if negate else 'IN'} ({', '.join('?' * len(values))})"


#: Up to this many ``cwd`` values, each gets its own index walk (merged here), so rare
#: directories cost no more than one; past it, one walk filters on them all.
MAX_CWD_WALKS: Final = 8


def _utf8(values: tuple[str, ...]) -> list[str]:
    """Distinct values that can match: stored text is always valid UTF-8."""
    return sorted({value for value in values if is_utf8(value)})


def _filters(query: ListQuery) -> list[tuple[str, list[Any]]] | None:
    """SQL conditions on ``t`` for the query's filters, one per index walk to run (one
    per cwd, up to ``MAX_CWD_WALKS``); None if nothing can match."""
    clauses = ["t.archived = ?"]
    params: list[Any] = [int(query.archived)]
    if query.included_ids is not None:
        included = _utf8(query.included_ids)
        if not included:
            return None
        clauses.append(_in("t.id", included))
        params += included
    excluded = sorted({value for value in query.excluded_ids if is_utf8(value)})
    if excluded:
        clauses.append(_in("t.id", excluded, negate=True))
        params += excluded
    if query.search_term:
        if not is_utf8(query.search_term):
            return None
        clauses.append("(instr(t.preview_fold, ?) > 0 OR instr(t.name_fold, ?) > 0)")
        params += [fold(query.search_term)] * 2
    if query.model_providers:
        providers = sorted({value for value in query.model_providers if is_utf8(value)})
        if not providers:
            return None
        clauses.append(_in("t.model_provider", providers))
        params += providers
    cwds = query.cwds()
    if cwds is None:
        return [(" AND ".join(clauses), params)]
    values = _utf8(cwds)
    if not values:
        return None
    if len(values) > MAX_CWD_WALKS:
        return [(" AND ".join([*clauses, _in("t.cwd", values)]), params + values)]
    return [(" AND ".join([*clauses, "t.cwd = ?"]), [*params, cwd]) for cwd in values]


def _keyset(
    key: str, id_column: str, cursor: Cursor | None, descending: bool
) -> tuple[str, list[Any]]:
    """The condition "beyond ``cursor``" on (``key``, ``id_column``)."""
    if cursor is None:
        return "", []
    cmp = "<" if descending else ">"
    if cursor.id is None:  # an inclusive anchor (backwards cursor)
        return f" AND {key} {cmp}= ?", [cursor.key]
    return f" AND ({key}, {id_column}) {cmp} (?, ?)", [cursor.key, cursor.id]


def _walk(
    conn: sqlite3.Connection,
    table: str,
    where: str,
    params: list[Any],
    query: ListQuery,
    cursor: Cursor | None,
    snapshot: int,
    change_seq: int,
    limit: int,
) -> list[Row]:
    """Up to ``limit + 1`` rows beyond ``cursor`` in the order as of ``snapshot``,
    unsorted across the two parts (the last column is the sort key's value)."""
    key = query.sort_key
    mutable = key != "created_at"
    descending = query.direction == "desc"
    order = "DESC" if descending else "ASC"
    keyset, after = _keyset(f"t.{key}", "t.id", cursor, descending)
    unchanged = " AND t.key_seq <= ?" if mutable else ""
    rows: list[Row] = conn.execute(
        f"SELECT {COLUMNS}, t.{key} FROM {table} WHERE {where}{unchanged}{keyset} "
        f"ORDER BY t.{key} {order}, t.id {order} LIMIT ?",
        [*params, *([snapshot] if mutable else []), *after, limit + 1],
    ).fetchall()
    if mutable and snapshot < change_seq:
        # threads whose key changed since the snapshot, at their old position
        keyset, after = _keyset(f"h.old_{key}", "h.thread_id", cursor, descending)
        rows += conn.execute(
            f"SELECT {COLUMNS}, h.old_{key} FROM thread_history h "
            "CROSS JOIN threads t ON t.id = h.thread_id "  # history drives the join
            "WHERE h.seq > ? AND NOT EXISTS (SELECT 1 FROM thread_history e "
            "WHERE e.thread_id = h.thread_id AND e.seq > ? AND e.seq < h.seq) "
            f"AND {where}{keyset} "
            f"ORDER BY h.old_{key} {order}, h.thread_id {order} LIMIT ?",
            [snapshot, snapshot, *params, *after, limit + 1],
        ).fetchall()
    return rows


def list_page(conn: sqlite3.Connection, query: ListQuery, cursor: Cursor | None) -> ThreadPage:
    """One page of ``query`` from ``cursor`` (already decoded), with its cursors."""
    change_seq, pruned_seq = conn.execute(
        "SELECT change_seq, pruned_seq FROM store_state WHERE id = 1"
    ).fetchone()
    key = query.sort_key
    mutable = key != "created_at"
    snapshot: int = change_seq
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
    # At most 100 included ids: look them up by primary key, never walk a sort index.
    table = (
        "threads t"
        if query.included_ids is None
        else "threads t INDEXED BY sqlite_autoindex_threads_1"
    )
    rows: list[Row] = []
    for where, params in walks:
        rows += _walk(conn, table, where, params, query, cursor, snapshot, change_seq, limit)
    if len(walks) > 1 or (mutable and snapshot < change_seq):
        rows.sort(key=lambda row: (row[-1], row[0]), reverse=descending)
        del rows[limit + 1 :]
    next_cursor, backwards = page_cursors([(row[-1], row[0]) for row in rows], limit, key, snapshot)
    return ThreadPage(
        threads=[thread_from_row(row) for row in rows[:limit]],
        next_cursor=next_cursor,
        backwards_cursor=backwards,
    )
