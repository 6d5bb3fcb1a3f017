"""SqliteStore specifics: the file, reopening, crash recovery, open errors, query plans."""

from __future__ import annotations

import pathlib
import shutil
import sqlite3

import pytest

from appserver.store import (
    SCHEMA_VERSION,
    ListQuery,
    SortKey,
    SqliteStore,
    StoreOpenError,
    ThreadRecord,
    TurnRecord,
    open_sqlite_store,
)

from .helpers import flat, make_thread, walk

ERROR = {"message": "boom", "codexErrorInfo": None, "additionalDetails": None}


async def fill(store: SqliteStore) -> list[ThreadRecord]:
    records = [
        make_thread(1, name="named", settings={"config": {"k": [1, "ü"]}}),
        make_thread(2, archived=True, cwd="/elsewhere", model_provider="other"),
        make_thread(3, created_at=5, updated_at=5),
    ]
    for record in records:
        await store.create_thread(record)
    one, three = records[0].id, records[2].id
    await store.start_turn(one, "done", updated_at=10, preview="first line")
    await store.put_item(one, "done", {"id": "u", "type": "userMessage", "content": []})
    await store.put_item(one, "done", {"id": "a", "type": "agentMessage", "text": "hi"})
    await store.finish_turn(one, "done", status="failed", error=ERROR, updated_at=11)
    await store.start_turn(one, "running", updated_at=12)
    await store.put_item(one, "running", {"id": "r", "type": "reasoning", "summary": ["s"]})
    await store.start_turn(three, "also-running", updated_at=13)
    return [r for r in [await store.get_thread(r.id) for r in records] if r is not None]


def expected_turns(thread_id: str) -> list[TurnRecord]:
    return [
        TurnRecord(
            id="done",
            thread_id=thread_id,
            status="failed",
            error=ERROR,
            items=[
                {"id": "u", "type": "userMessage", "content": []},
                {"id": "a", "type": "agentMessage", "text": "hi"},
            ],
        ),
        TurnRecord(
            id="running",
            thread_id=thread_id,
            status="interrupted",
            items=[{"id": "r", "type": "reasoning", "summary": ["s"]}],
        ),
    ]


async def check_reopened(path: pathlib.Path, records: list[ThreadRecord]) -> None:
    async with open_sqlite_store(path) as store:
        assert store.interrupted_at_open == 2
        for record in records:
            assert await store.get_thread(record.id) == record
        assert await store.get_turns(records[0].id) == expected_turns(records[0].id)
        assert [t.status for t in await store.get_turns(records[2].id)] == ["interrupted"]
        assert await store.interrupt_running_turns() == 0


async def test_reopen_preserves_everything(db_path: pathlib.Path) -> None:
    async with open_sqlite_store(db_path) as store:
        records = await fill(store)
        assert store.interrupted_at_open == 0
    await check_reopened(db_path, records)


async def test_killed_process_leaves_a_consistent_store(
    db_path: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    async with open_sqlite_store(db_path) as store:
        records = await fill(store)
        # what a kill -9 leaves behind: the database and its WAL, never checkpointed
        wal = db_path.with_name(db_path.name + "-wal")
        assert wal.stat().st_size > 0
        shutil.copy(db_path, crashed / db_path.name)
        shutil.copy(wal, crashed / wal.name)
    await check_reopened(crashed / db_path.name, records)


async def test_cursor_survives_a_restart(db_path: pathlib.Path) -> None:
    async with open_sqlite_store(db_path) as store:
        records = [make_thread(n, updated_at=100 + n) for n in range(10)]
        for record in records:
            await store.create_thread(record)
        page, cursor = await store.list_threads(ListQuery(limit=4, sort_key="updated_at"))
        await store.update_thread(records[0].id, updated_at=1000)
    async with open_sqlite_store(db_path) as store:
        rest = flat(await walk(store, ListQuery(limit=4, sort_key="updated_at", cursor=cursor)))
    assert [t.id for t in page] + rest == [r.id for r in reversed(records)]


async def test_file_is_healthy_wal_and_versioned(db_path: pathlib.Path) -> None:
    async with open_sqlite_store(db_path) as store:
        await fill(store)
        # another connection may read while the store is open (WAL)
        with sqlite3.connect(db_path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert conn.execute("SELECT count(*) FROM threads").fetchone() == (3,)
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        versions = conn.execute("SELECT version FROM schema_migrations").fetchall()
        assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (3,)
    finally:
        conn.close()
    async with open_sqlite_store(db_path):  # reopening does not migrate twice
        pass
    conn = sqlite3.connect(db_path)
    try:
        count = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
        assert count == (SCHEMA_VERSION,)
    finally:
        conn.close()


async def test_open_failures_name_the_path(tmp_path: pathlib.Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database, just some text " * 100)
    for path in [not_a_dir / "appserver.sqlite3", tmp_path, garbage]:
        with pytest.raises(StoreOpenError, match="cannot open the store at") as info:
            async with open_sqlite_store(path):
                pass
        assert str(path) in str(info.value)
    assert garbage.read_bytes() == b"this is not a database, just some text " * 100


async def test_newer_schema_is_refused(db_path: pathlib.Path) -> None:
    async with open_sqlite_store(db_path):
        pass
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (SCHEMA_VERSION + 1,))
    conn.close()
    with pytest.raises(StoreOpenError, match="newer") as info:
        async with open_sqlite_store(db_path):
            pass
    assert str(db_path) in str(info.value)


async def test_invalid_unicode_search_matches_nothing(db_path: pathlib.Path) -> None:
    async with open_sqlite_store(db_path) as store:
        await store.create_thread(make_thread(1))
        assert await store.list_threads(ListQuery(search_term="\ud800")) == ([], None)
        assert await store.list_threads(ListQuery(cwd="\udcff")) == ([], None)


def query_plans(path: pathlib.Path, statements: list[str]) -> list[list[str]]:
    conn = sqlite3.connect(path)
    try:
        return [[row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")] for sql in statements]
    finally:
        conn.close()


QUERIES = [
    ListQuery(limit=5),
    ListQuery(limit=5, archived=True),
    ListQuery(limit=5, cwd="/w1"),
    ListQuery(limit=5, search_term="Preview 1"),
    ListQuery(limit=5, cwd="/w2", search_term="1", model_providers=("builtin", "x")),
]


@pytest.mark.parametrize("key", ["created_at", "updated_at"])
async def test_list_pages_walk_an_index(db_path: pathlib.Path, key: SortKey) -> None:
    records = [make_thread(n, cwd=f"/w{n % 3}", archived=n % 5 == 0) for n in range(300)]
    for reopen in range(2):  # before and after the statistics `PRAGMA optimize` gathers
        async with open_sqlite_store(db_path) as store:
            if not reopen:
                for record in records:
                    await store.create_thread(record)
            _, cursor = await store.list_threads(ListQuery(limit=5, sort_key=key))
            await store.update_thread(records[7].id, updated_at=10**10 + reopen)
            statements: list[str] = []
            store._reader.set_trace_callback(statements.append)  # type: ignore[union-attr]
            for query in QUERIES:
                await walk(store, ListQuery(limit=5, sort_key=key, cursor=cursor, cwd=query.cwd))
                await store.list_threads(query)
            store._reader.set_trace_callback(None)  # type: ignore[union-attr]
        selects = [s for s in statements if s.startswith("SELECT t.id")]
        assert len(selects) > 20
        for sql, plan in zip(selects, query_plans(db_path, selects), strict=True):
            assert not any(step.startswith("SCAN") for step in plan), (sql, plan)
            if "FROM threads t" in sql:  # keyset walk in index order: no sorting
                assert not any("TEMP B-TREE" in step for step in plan), (sql, plan)
