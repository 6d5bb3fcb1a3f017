"""thread/list for PostgresStore: the SQL that is its own (the algorithm and its cursor
guarantees, shared with the SQLite store, are :mod:`._sql_list`): lists as one array
parameter (``= ANY(%s)``), ``strpos`` for the substring search; text never holds NUL."""

from __future__ import annotations

from typing import Any, Final

from appserver.store._sql_list import ListSql
from appserver.store.cursor import is_utf8

__all__ = ["SQL"]


def _among(column: str, values: list[str], negate: bool) -> tuple[str, list[Any]]:
    clause = f"{column} = ANY(%s)"
    return (f"NOT ({clause})" if negate else clause), [values]


def _can_match(value: str) -> bool:
    return is_utf8(value) and "\0" not in value


SQL: Final = ListSql(
    p="%s",
    among=_among,
    search="(strpos(t.preview_fold, %s) > 0 OR strpos(t.name_fold, %s) > 0)",
    can_match=_can_match,
    table="threads t",
    by_id_table="threads t",
    history_join="JOIN",
)
