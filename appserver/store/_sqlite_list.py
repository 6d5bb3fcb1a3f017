"""thread/list for SqliteStore: the SQL that is its own (the algorithm and its cursor
guarantees are :mod:`._sql_list`). ``IN (?, ...)`` lists, ``instr`` for the substring
search (the fold columns are in the index, so a rare term's walk does not read the
table: ~8 ms for a 0.1% term at 100k threads), included ids looked up through the
primary key's index, and the history rows driving their join (``CROSS JOIN``)."""

from __future__ import annotations

from typing import Any, Final

from appserver.store._sql_list import ListSql
from appserver.store.cursor import is_utf8

__all__ = ["SQL"]


def _among(column: str, values: list[str], negate: bool) -> tuple[str, list[Any]]:
    if len(values) == 1:
        return f"{column} {'!=' if negate else '='} ?", list(values)
    marks = ", ".join("?" * len(values))
    return f"{column} {'NOT IN' if negate else 'IN'} ({marks})", list(values)


SQL: Final = ListSql(
    p="?",
    among=_among,
    search="(instr(t.preview_fold, ?) > 0 OR instr(t.name_fold, ?) > 0)",
    can_match=is_utf8,
    table="threads t",
    by_id_table="threads t INDEXED BY sqlite_autoindex_threads_1",
    history_join="CROSS JOIN",
)
