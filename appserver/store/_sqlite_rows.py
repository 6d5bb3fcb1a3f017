"""SqliteStore building blocks: connections, the thread row insert, and the sort key
history behind stable cursors (see :mod:`appserver.store.sqlite`)."""

from __future__ import annotations

import pathlib
import sqlite3
import time
from typing import Any, Final

from appserver.store import _sqlite_lifecycle, _sqlite_list, _sqlite_pages
from appserver.store._sql_common import thread_params
from appserver.store._sql_list import COLUMNS
from appserver.store._sql_store import StoreSql
from appserver.store.errors import StoreOpenError

__all__ = [
    "INSERT_SETTINGS_SQL",
    "INSERT_THREAD_SQL",
    "SQL",
    "connect_db",
    "prune",
    "thread_params",
    "touch",
]

Row = tuple[Any, ...]

INSERT_THREAD_SQL: Final = (
    "INSERT INTO threads (id, preview, name, model_provider, model, cwd, created_at, "
    "updated_at, recency_at, archived, preview_fold, name_fold) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)
INSERT_SETTINGS_SQL: Final = "INSERT INTO thread_settings (thread_id, settings) VALUES (?, ?)"

#: The SQLite dialect of the shared store methods (``_sql_store``).
SQL: Final = StoreSql(
    p="?",
    insert_thread=INSERT_THREAD_SQL,
    insert_settings=INSERT_SETTINGS_SQL,
    get_thread=f"SELECT {COLUMNS} FROM threads t WHERE t.id = ?",
    update_settings="UPDATE thread_settings SET settings = ? WHERE thread_id = ?",
    insert_turn="INSERT INTO turns (thread_id, id, status, started_at_ms) "
    "VALUES (?, ?, 'inProgress', ?) ON CONFLICT (thread_id, id) DO NOTHING",
    set_preview="UPDATE threads SET preview = ?, preview_fold = ? WHERE id = ?",
    finish_turn="UPDATE turns SET status = ?, error = ?, completed_at_ms = ? WHERE seq = ?",
    get_turns="SELECT t.seq, t.id, t.status, t.error, t.started_at_ms, t.completed_at_ms, "
    "i.body FROM turns t LEFT JOIN items i ON i.turn_seq = t.seq "
    "WHERE t.thread_id = ? ORDER BY t.seq, i.seq",
    lock_thread=None,  # one writer connection: BEGIN IMMEDIATE holds the database
    pages=_sqlite_pages.SQL,
    list=_sqlite_list.SQL,
    lifecycle=_sqlite_lifecycle.SQL,
)


def connect_db(path: pathlib.Path, *, read_only: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=10.0, isolation_level=None, check_same_thread=False)
    try:
        if not read_only:
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if str(mode).lower() != "wal":
                raise StoreOpenError(f"cannot put the store at {path} in WAL mode ({mode})")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        if read_only:
            conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def touch(
    conn: sqlite3.Connection, thread_id: str, old: int, new: int, *, recency_at: int | None
) -> None:
    """Set updated_at from ``old`` to ``new`` (and recency_at, if given), recording the
    previous values of both in the history under a new change seq."""
    (old_recency,) = conn.execute(
        "SELECT recency_at FROM threads WHERE id = ?", (thread_id,)
    ).fetchone()
    new_recency = old_recency if recency_at is None else recency_at
    if new == old and new_recency == old_recency:
        return
    conn.execute("UPDATE store_state SET change_seq = change_seq + 1 WHERE id = 1")
    (seq,) = conn.execute("SELECT change_seq FROM store_state WHERE id = 1").fetchone()
    conn.execute(
        "INSERT INTO thread_history (seq, thread_id, old_updated_at, old_recency_at, recorded_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (seq, thread_id, old, old_recency, time.time()),
    )
    conn.execute(
        "UPDATE threads SET updated_at = ?, recency_at = ?, key_seq = ? WHERE id = ?",
        (new, new_recency, seq, thread_id),
    )


def prune(conn: sqlite3.Connection, max_age_seconds: float) -> int:
    """Forget history recorded more than ``max_age_seconds`` ago; return how many rows."""
    cutoff = time.time() - max_age_seconds
    oldest = conn.execute("SELECT recorded_at FROM thread_history ORDER BY seq LIMIT 1")
    row = oldest.fetchone()
    if row is None or row[0] >= cutoff:
        return 0
    (last,) = conn.execute(
        "SELECT max(seq) FROM thread_history INDEXED BY thread_history_age WHERE recorded_at < ?",
        (cutoff,),
    ).fetchone()
    deleted = conn.execute("DELETE FROM thread_history WHERE seq <= ?", (last,)).rowcount
    conn.execute("UPDATE store_state SET pruned_seq = max(pruned_seq, ?) WHERE id = 1", (last,))
    return int(deleted)
