"""thread/list of the SQL stores: one keyset page, in the caller's read transaction
(cursor positions: :mod:`appserver.store.cursor`), written once over each store's
``ListSql`` (``_sqlite_list``, ``_pg_list``: the SQL that differs).

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

from collections.abc import Callable
from typing import Any, Final

import attrs

from appserver.store._sql_common import Row, SqlConn, thread_from_row
from appserver.store.base import InvalidCursor, ListQuery, ThreadPage
from appserver.store.cursor import Cursor, fold, page_cursors

__all__ = ["COLUMNS", "MAX_CWD_WALKS", "ListSql", "list_page"]

#: A thread's columns (``_sql_common.thread_from_row``), the thread table aliased ``t``.
COLUMNS: Final = (
    "t.id, t.preview, t.name, t.model_provider, t.model, t.cwd, "
    "t.created_at, t.updated_at, t.recency_at, t.archived, "
    "(SELECT s.settings FROM thread_settings s WHERE s.thread_id = t.id)"
)

#: Up to this many ``cwd`` values, each gets its own index walk (merged here), so rare
#: directories cost no more than one; past it, one walk filters on them all.
MAX_CWD_WALKS: Final = 8


@attrs.frozen(kw_only=True)
class ListSql:
    """What differs between the dialects' thread/list queries."""

    #: the placeholder ("?" or "%s")
    p: str
    #: (column, values, negate) -> a condition on ``column`` and its parameters
    among: Callable[[str, list[str], bool], tuple[str, list[Any]]]
    #: the searchTerm condition, taking the folded term twice
    search: str
    #: whether a value can equal stored text (valid UTF-8; PostgreSQL: also no NUL)
    can_match: Callable[[str], bool]
    #: the thread table when walking the sort indexes / when looking up included ids
    table: str
    by_id_table: str
    #: how the history rows join the threads (SQLite: CROSS JOIN, history drives)
    history_join: str


def _matchable(sql: ListSql, values: tuple[str, ...]) -> list[str]:
    """Distinct values that can match stored text."""
    return sorted({value for value in values if sql.can_match(value)})


def _filters(sql: ListSql, query: ListQuery) -> list[tuple[str, list[Any]]] | None:
    """SQL conditions on ``t`` for the query's filters, one per index walk to run (one
    per cwd, up to ``MAX_CWD_WALKS``); None if nothing can match."""
    clauses = [f"t.archived = {sql.p}"]
    params: list[Any] = [bool(query.archived)]

    def among(column: str, values: list[str], negate: bool = False) -> None:
        clause, args = sql.among(column, values, negate)
        clauses.append(clause)
        params.extend(args)

    if query.included_ids is not None:
        included = _matchable(sql, query.included_ids)
        if not included:
            return None
        among("t.id", included)
    excluded = _matchable(sql, query.excluded_ids)
    if excluded:
        among("t.id", excluded, True)
    if query.search_term:
        if not sql.can_match(query.search_term):
            return None
        clauses.append(sql.search)
        params += [fold(query.search_term)] * 2
    if query.model_providers:
        providers = _matchable(sql, query.model_providers)
        if not providers:
            return None
        among("t.model_provider", providers)
    cwds = query.cwds()
    if cwds is None:
        return [(" AND ".join(clauses), params)]
    values = _matchable(sql, cwds)
    if not values:
        return None
    if len(values) > MAX_CWD_WALKS:
        clause, args = sql.among("t.cwd", values, False)
        return [(" AND ".join([*clauses, clause]), params + args)]
    return [(" AND ".join([*clauses, f"t.cwd = {sql.p}"]), [*params, cwd]) for cwd in values]


def _keyset(
    p: str, key: str, id_column: str, cursor: Cursor | None, descending: bool
) -> tuple[str, list[Any]]:
    """The condition "beyond ``cursor``" on (``key``, ``id_column``)."""
    if cursor is None:
        return "", []
    cmp = "<" if descending else ">"
    if cursor.id is None:  # an inclusive anchor (backwards cursor)
        return f" AND {key} {cmp}= {p}", [cursor.key]
    return f" AND ({key}, {id_column}) {cmp} ({p}, {p})", [cursor.key, cursor.id]


def _walk(
    conn: SqlConn,
    sql: ListSql,
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
    p, key = sql.p, query.sort_key
    mutable = key != "created_at"
    descending = query.direction == "desc"
    order = "DESC" if descending else "ASC"
    keyset, after = _keyset(p, f"t.{key}", "t.id", cursor, descending)
    unchanged = f" AND t.key_seq <= {p}" if mutable else ""
    rows: list[Row] = conn.execute(
        f"SELECT {COLUMNS}, t.{key} FROM {table} WHERE {where}{unchanged}{keyset} "
        f"ORDER BY t.{key} {order}, t.id {order} LIMIT {p}",
        [*params, *([snapshot] if mutable else []), *after, limit + 1],
    ).fetchall()
    if mutable and snapshot < change_seq:
        # threads whose key changed since the snapshot, at their old position
        keyset, after = _keyset(p, f"h.old_{key}", "h.thread_id", cursor, descending)
        rows += conn.execute(
            f"SELECT {COLUMNS}, h.old_{key} FROM thread_history h "
            f"{sql.history_join} threads t ON t.id = h.thread_id "
            f"WHERE h.seq > {p} AND NOT EXISTS (SELECT 1 FROM thread_history e "
            f"WHERE e.thread_id = h.thread_id AND e.seq > {p} AND e.seq < h.seq) "
            f"AND {where}{keyset} "
            f"ORDER BY h.old_{key} {order}, h.thread_id {order} LIMIT {p}",
            [snapshot, snapshot, *params, *after, limit + 1],
        ).fetchall()
    return rows


def list_page(conn: SqlConn, sql: ListSql, query: ListQuery, cursor: Cursor | None) -> ThreadPage:
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
    walks = _filters(sql, query)
    if walks is None:
        return ThreadPage(threads=[], next_cursor=None, backwards_cursor=None)
    descending = query.direction == "desc"
    limit = max(1, query.limit)
    # At most 100 included ids: look them up by primary key, never walk a sort index.
    table = sql.table if query.included_ids is None else sql.by_id_table
    rows: list[Row] = []
    for where, params in walks:
        rows += _walk(
            conn, sql, table, where, params, query, cursor, snapshot, int(change_seq), limit
        )
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
