"""The PostgreSQL schema, as numbered migrations recorded in ``schema_version``.

The same layout as the SQLite store (``_schema``), in one migration: PostgreSQL starts
where SQLite's five migrations ended. Add a migration by appending ``(next_version,
(statements...))`` to ``MIGRATIONS``; never edit a released one.

Concurrency: every migration step runs in one transaction that first takes the
transaction-level advisory lock ``MIGRATION_LOCK`` (PostgreSQL DDL is transactional), so
two processes starting at once migrate one after the other; the second finds the version
recorded and does nothing. Ids are ``COLLATE "C"`` so ties order by code point, as in
the other stores, whatever the database's default collation.

The cluster (issue 16 step 3, appserver/cluster/ owns what the rows mean): migration 3
adds its nodes (``cluster_nodes``), thread ownership (``thread_leases``: owner
``node_id``, fencing ``epoch``, lease expiry; a fenced write checks its row, _pg_conn)
and the calls nodes forward to a thread's owner (``cluster_calls``). Their times are the
database's clock (``now()``), the same for every node.
"""

from __future__ import annotations

from typing import Any, Final

from appserver.store.errors import StoreOpenError

__all__ = ["CLUSTER_TABLES", "MIGRATIONS", "MIGRATION_LOCK", "SCHEMA_VERSION", "migrate"]

#: pg_advisory_xact_lock key of schema migrations ("appsrv" in ASCII).
MIGRATION_LOCK: Final = 0x617070737276

_V1: Final = (
    """CREATE TABLE store_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        change_seq BIGINT NOT NULL,
        pruned_seq BIGINT NOT NULL
    )""",
    "INSERT INTO store_state (id, change_seq, pruned_seq) VALUES (1, 0, 0)",
    """CREATE TABLE threads (
        id TEXT COLLATE "C" PRIMARY KEY,
        preview TEXT NOT NULL,
        name TEXT,
        model_provider TEXT NOT NULL,
        model TEXT NOT NULL,
        cwd TEXT COLLATE "C" NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        recency_at BIGINT NOT NULL,
        archived BOOLEAN NOT NULL,
        key_seq BIGINT NOT NULL DEFAULT 0,
        preview_fold TEXT NOT NULL,
        name_fold TEXT
    )""",
    """CREATE TABLE thread_settings (
        thread_id TEXT COLLATE "C" PRIMARY KEY REFERENCES threads (id),
        settings TEXT NOT NULL
    )""",
    "CREATE INDEX threads_created ON threads (archived, created_at, id)",
    "CREATE INDEX threads_updated ON threads (archived, updated_at, id, key_seq)",
    "CREATE INDEX threads_recency ON threads (archived, recency_at, id, key_seq)",
    "CREATE INDEX threads_cwd_created ON threads (archived, cwd, created_at, id)",
    "CREATE INDEX threads_cwd_updated ON threads (archived, cwd, updated_at, id)",
    "CREATE INDEX threads_cwd_recency ON threads (archived, cwd, recency_at, id)",
    """CREATE TABLE thread_history (
        seq BIGINT PRIMARY KEY,
        thread_id TEXT COLLATE "C" NOT NULL REFERENCES threads (id),
        old_updated_at BIGINT NOT NULL,
        old_recency_at BIGINT NOT NULL,
        recorded_at DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX thread_history_thread ON thread_history (thread_id, seq)",
    "CREATE INDEX thread_history_age ON thread_history (recorded_at)",
    """CREATE TABLE turns (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        thread_id TEXT COLLATE "C" NOT NULL REFERENCES threads (id),
        id TEXT COLLATE "C" NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('inProgress', 'completed', 'interrupted', 'failed')),
        error TEXT,
        started_at_ms BIGINT,
        completed_at_ms BIGINT,
        UNIQUE (thread_id, id)
    )""",
    "CREATE INDEX turns_by_thread ON turns (thread_id, seq)",
    "CREATE INDEX turns_running ON turns (status) WHERE status = 'inProgress'",
    # type: the item's "type", written with it (kept out of JSON casts: jsonb refuses
    # the \u0000 and lone-surrogate escapes an item may hold)
    """CREATE TABLE items (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        turn_seq BIGINT NOT NULL REFERENCES turns (seq),
        id TEXT COLLATE "C" NOT NULL,
        type TEXT,
        body TEXT NOT NULL,
        UNIQUE (turn_seq, id)
    )""",
    "CREATE INDEX items_by_turn ON items (turn_seq, seq)",
    "CREATE INDEX items_by_type ON items (turn_seq, type, seq)",
    """CREATE TABLE injected_items (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        thread_id TEXT COLLATE "C" NOT NULL REFERENCES threads (id),
        after_turn_seq BIGINT NOT NULL,
        body TEXT NOT NULL
    )""",
    "CREATE INDEX injected_items_by_thread ON injected_items (thread_id, seq)",
)

# The numbered event log (PROTOCOL.md §13, _sql_events.py): each thread's seq high-water
# mark, its recent events as sent to opted-in connections, and the log's size.
_V2: Final = (
    """CREATE TABLE event_marks (
        thread_id TEXT COLLATE "C" PRIMARY KEY,
        reserved BIGINT NOT NULL,
        clean BOOLEAN NOT NULL
    )""",
    """CREATE TABLE thread_events (
        thread_id TEXT COLLATE "C" NOT NULL,
        seq BIGINT NOT NULL,
        bytes BIGINT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (thread_id, seq)
    )""",
    """CREATE TABLE event_log_totals (
        thread_id TEXT COLLATE "C" PRIMARY KEY,
        events BIGINT NOT NULL,
        bytes BIGINT NOT NULL
    )""",
)

# The cluster's tables (issue 16 step 3). ``session``: a token a node draws at each start
# (and reconnect), so a lease renewal of an older incarnation of the node matches nothing.
_V3: Final = (
    """CREATE TABLE cluster_nodes (
        node_id TEXT COLLATE "C" PRIMARY KEY,
        session TEXT NOT NULL,
        heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        urls JSONB NOT NULL DEFAULT '[]'
    )""",
    """CREATE TABLE thread_leases (
        thread_id TEXT COLLATE "C" PRIMARY KEY,
        node_id TEXT COLLATE "C" NOT NULL,
        session TEXT NOT NULL,
        epoch BIGINT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    )""",
    "CREATE INDEX thread_leases_by_node ON thread_leases (node_id)",
    """CREATE TABLE cluster_calls (
        id BIGSERIAL PRIMARY KEY,
        target_node TEXT COLLATE "C" NOT NULL,
        from_node TEXT COLLATE "C" NOT NULL,
        thread_id TEXT COLLATE "C",
        kind TEXT NOT NULL,
        body JSONB NOT NULL,
        reply JSONB,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        replied_at TIMESTAMPTZ
    )""",
    "CREATE INDEX cluster_calls_pending ON cluster_calls (target_node, id) WHERE reply IS NULL",
)

#: Tables of the cluster's (migration 3 on): thread/delete leaves their rows alone.
CLUSTER_TABLES: Final = frozenset({"cluster_nodes", "thread_leases", "cluster_calls"})

MIGRATIONS: Final[tuple[tuple[int, tuple[str, ...]], ...]] = ((1, _V1), (2, _V2), (3, _V3))
SCHEMA_VERSION: Final = MIGRATIONS[-1][0]


def _current(conn: Any) -> int:
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(row[0])


def migrate(conn: Any, where: str, applied_by: str, *, upto: int = SCHEMA_VERSION) -> int:
    """Bring the database to ``SCHEMA_VERSION`` (or only to ``upto``: tests that build
    an old database); return the version it had before.

    ``conn`` is a psycopg connection in autocommit mode; ``where`` names the database
    in errors; ``applied_by`` (the node's application_name) is recorded per version.
    """
    before: int | None = None
    for version, statements in ((0, ()), *(m for m in MIGRATIONS if m[0] <= upto)):
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now(), applied_by TEXT NOT NULL)"
            )
            current = _current(conn)
            if before is None:
                before = current
                if current > SCHEMA_VERSION:
                    raise StoreOpenError(
                        f"the store at {where} has schema version {current}, newer than "
                        f"this appserver supports ({SCHEMA_VERSION})"
                    )
            if version == 0 or current >= version:  # another process got there first
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied_by) VALUES (%s, %s)",
                (version, applied_by),
            )
    return before or 0
