"""The SQLite schema, as numbered migrations recorded in ``schema_migrations(version)``.

Add a migration by appending ``(next_version, (statements...))`` to ``MIGRATIONS``;
never edit a released one. Each migration runs in its own transaction at open.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Final

from appserver.store.errors import StoreOpenError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate"]

_V1: Final = (
    # One row: the global change sequence (bumped by every updated_at change) and the
    # highest sequence whose history has been pruned (older cursors are expired).
    """CREATE TABLE store_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        change_seq INTEGER NOT NULL,
        pruned_seq INTEGER NOT NULL
    )""",
    "INSERT INTO store_state (id, change_seq, pruned_seq) VALUES (1, 0, 0)",
    # Only the columns list walks filter on: rows stay small, so a filtered walk through
    # many rows touches few pages. Settings (maybe KBs of instructions) live apart.
    """CREATE TABLE threads (
        id TEXT PRIMARY KEY NOT NULL,
        preview TEXT NOT NULL,
        name TEXT,
        model_provider TEXT NOT NULL,
        model TEXT NOT NULL,
        cwd TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        archived INTEGER NOT NULL CHECK (archived IN (0, 1)),
        key_seq INTEGER NOT NULL DEFAULT 0,
        preview_fold TEXT NOT NULL,
        name_fold TEXT
    )""",
    """CREATE TABLE thread_settings (
        thread_id TEXT PRIMARY KEY NOT NULL REFERENCES threads (id),
        settings TEXT NOT NULL
    )""",
    # The trailing columns let a filtered walk test rows without reading the table.
    "CREATE INDEX threads_created ON threads (archived, created_at, id, preview_fold, name_fold)",
    "CREATE INDEX threads_updated ON threads "
    "(archived, updated_at, id, key_seq, preview_fold, name_fold)",
    "CREATE INDEX threads_cwd_created ON threads (archived, cwd, created_at, id)",
    "CREATE INDEX threads_cwd_updated ON threads (archived, cwd, updated_at, id)",
    # (thread_id, the updated_at it had before change `seq`, wall time of the change)
    """CREATE TABLE thread_history (
        seq INTEGER PRIMARY KEY,
        thread_id TEXT NOT NULL REFERENCES threads (id),
        old_updated_at INTEGER NOT NULL,
        recorded_at REAL NOT NULL
    )""",
    "CREATE INDEX thread_history_thread ON thread_history (thread_id, seq)",
    "CREATE INDEX thread_history_age ON thread_history (recorded_at)",
    """CREATE TABLE turns (
        seq INTEGER PRIMARY KEY,
        thread_id TEXT NOT NULL REFERENCES threads (id),
        id TEXT NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('inProgress', 'completed', 'interrupted', 'failed')),
        error TEXT,
        UNIQUE (thread_id, id)
    )""",
    "CREATE INDEX turns_by_thread ON turns (thread_id, seq)",
    "CREATE INDEX turns_running ON turns (status) WHERE status = 'inProgress'",
    """CREATE TABLE items (
        seq INTEGER PRIMARY KEY,
        turn_seq INTEGER NOT NULL REFERENCES turns (seq),
        id TEXT NOT NULL,
        body TEXT NOT NULL,
        UNIQUE (turn_seq, id)
    )""",
    "CREATE INDEX items_by_turn ON items (turn_seq, seq)",
)

# Turn timing (Codex 0.171 Turn.startedAt / completedAt / durationMs), Unix milliseconds.
_V2: Final = (
    "ALTER TABLE turns ADD COLUMN started_at_ms INTEGER",
    "ALTER TABLE turns ADD COLUMN completed_at_ms INTEGER",
)

# The recency_at sort key (Codex 0.171 Thread.recencyAt: creation, then each turn start).
# Existing threads get the start of their last turn (schema 2 timing), else their
# updated_at if they had turns, else created_at. thread_history also records the old
# recency_at of each change (key_seq now covers both mutable keys); rows older than this
# migration keep 0 there, which is never read: no recency_at cursor predates it.
_V3: Final = (
    "ALTER TABLE threads ADD COLUMN recency_at INTEGER NOT NULL DEFAULT 0",
    """UPDATE threads SET recency_at = coalesce(
        (SELECT max(u.started_at_ms) / 1000 FROM turns u WHERE u.thread_id = threads.id),
        CASE WHEN EXISTS (SELECT 1 FROM turns u WHERE u.thread_id = threads.id)
            THEN updated_at ELSE created_at END)""",
    "ALTER TABLE thread_history ADD COLUMN old_recency_at INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX threads_recency ON threads "
    "(archived, recency_at, id, key_seq, preview_fold, name_fold)",
    "CREATE INDEX threads_cwd_recency ON threads (archived, cwd, recency_at, id)",
)

# The item type (a virtual column computed from the JSON body, so every writer fills it),
# indexed with its turn: a turns/list `summary` page reads each turn's user messages and
# final agent message without reading its other items (_sql_pages.summary_page).
_V4: Final = (
    "ALTER TABLE items ADD COLUMN type TEXT "
    "GENERATED ALWAYS AS (json_extract(body, '$.type')) VIRTUAL",
    "CREATE INDEX items_by_type ON items (turn_seq, type, seq)",
)

# thread/inject_items: raw Responses API items in the model-visible history, in order,
# each after the turn that was the thread's last when it came (0: before any turn).
_V5: Final = (
    """CREATE TABLE injected_items (
        seq INTEGER PRIMARY KEY,
        thread_id TEXT NOT NULL REFERENCES threads (id),
        after_turn_seq INTEGER NOT NULL,
        body TEXT NOT NULL
    )""",
    "CREATE INDEX injected_items_by_thread ON injected_items (thread_id, seq)",
)

# The numbered event log (PROTOCOL.md §13, store/_sql_events.py): each thread's seq
# high-water mark (reserved in blocks before use; ``clean`` once released at close) and
# its recent events as sent to opted-in connections, bounded by count and bytes.
_V6: Final = (
    """CREATE TABLE event_marks (
        thread_id TEXT PRIMARY KEY NOT NULL,
        reserved INTEGER NOT NULL,
        clean INTEGER NOT NULL CHECK (clean IN (0, 1))
    )""",
    """CREATE TABLE thread_events (
        thread_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (thread_id, seq)
    ) WITHOUT ROWID""",
    # How many events and bytes each thread's log holds (kept by every append, so
    # trimming walks only the few oldest rows it drops).
    """CREATE TABLE event_log_totals (
        thread_id TEXT PRIMARY KEY NOT NULL,
        events INTEGER NOT NULL,
        bytes INTEGER NOT NULL
    )""",
)

MIGRATIONS: Final[tuple[tuple[int, tuple[str, ...]], ...]] = (
    (1, _V1),
    (2, _V2),
    (3, _V3),
    (4, _V4),
    (5, _V5),
    (6, _V6),
)
SCHEMA_VERSION: Final = MIGRATIONS[-1][0]


def migrate(conn: sqlite3.Connection, path: object) -> int:
    """Bring the database to ``SCHEMA_VERSION``; return the version it had before.

    ``conn`` must be in autocommit mode (``isolation_level=None``).
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
    )
    (before,) = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    if before > SCHEMA_VERSION:
        raise StoreOpenError(
            f"the store at {path} has schema version {before}, newer than this "
            f"appserver supports ({SCHEMA_VERSION})"
        )
    for version, statements in MIGRATIONS:
        if version <= before:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,))
            if done.fetchone() is not None:  # another process got there first
                conn.execute("ROLLBACK")
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (version, int(time.time())),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return int(before)
