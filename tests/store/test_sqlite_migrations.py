"""Schema 3 (recency_at) applied to a store written by schema 2."""

from __future__ import annotations

import pathlib
import sqlite3

from appserver.store import ListQuery, open_sqlite_store
from appserver.store._schema import MIGRATIONS


def make_v2_store(path: pathlib.Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER)"
        )
        for version, statements in MIGRATIONS[:2]:
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (version,))
        for n, (created, updated) in enumerate([(10, 10), (20, 50), (30, 60)]):
            conn.execute(
                "INSERT INTO threads (id, preview, name, model_provider, model, cwd, "
                "created_at, updated_at, archived, preview_fold, name_fold) "
                "VALUES (?, '', NULL, 'builtin', 'script', '/w', ?, ?, 0, '', NULL)",
                (f"t{n}", created, updated),
            )
            conn.execute("INSERT INTO thread_settings VALUES (?, '{}')", (f"t{n}",))
        # t1: a turn from before schema 2 (no timing); t2: a timed turn started at 55 s
        conn.execute("INSERT INTO turns (thread_id, id, status) VALUES ('t1', 'a', 'completed')")
        conn.execute(
            "INSERT INTO turns (thread_id, id, status, started_at_ms) "
            "VALUES ('t2', 'b', 'completed', 55500)"
        )
        conn.execute("INSERT INTO thread_history VALUES (1, 't1', 20, 0)")
        conn.execute("UPDATE store_state SET change_seq = 1")
    finally:
        conn.close()


async def test_recency_at_is_derived_for_existing_threads(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "appserver.sqlite3"
    make_v2_store(path)
    async with open_sqlite_store(path) as store:
        recency = {t.id: t.recency_at for t in (await store.list_threads(ListQuery()))[0]}
        assert recency == {"t0": 10, "t1": 50, "t2": 55}
        page = await store.list_page(ListQuery(sort_key="recency_at", limit=1))
        assert [t.id for t in page.threads] == ["t2"]
        await store.start_turn("t0", "c", updated_at=70)
        rest = await store.list_page(ListQuery(sort_key="recency_at", cursor=page.next_cursor))
        assert [t.id for t in rest.threads] == ["t1", "t0"]  # t0 at its old place
        fresh = await store.list_page(ListQuery(sort_key="recency_at"))
        assert [t.id for t in fresh.threads] == ["t0", "t2", "t1"]
