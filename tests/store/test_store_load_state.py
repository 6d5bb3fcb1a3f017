"""load_state and list_turn_summaries: the reads that skip items (issue 14's resume and
summary page), memory and SQLite alike; schema 4 applied to a store written by schema 3."""

from __future__ import annotations

import json
import pathlib
import sqlite3
from typing import Any

import pytest

from appserver.store import InvalidCursor, MemoryStore, SqliteStore, open_sqlite_store
from appserver.store._schema import MIGRATIONS, SCHEMA_VERSION
from appserver.store.base import TurnStatus
from appserver.store.pages import summary_items
from appserver.store.postgres import PostgresStore

from .helpers import make_thread

Store = MemoryStore | SqliteStore | PostgresStore
T0 = 1_700_000_100


def user(n: str) -> dict[str, Any]:
    return {"type": "userMessage", "id": f"u{n}", "content": [{"type": "text", "text": n}]}


def agent(n: str) -> dict[str, Any]:
    return {"type": "agentMessage", "id": f"a{n}", "text": n}


def command(n: str) -> dict[str, Any]:
    return {"type": "commandExecution", "id": f"c{n}", "command": "true"}


async def turn(
    store: Store,
    thread_id: str,
    turn_id: str,
    items: list[dict[str, Any]],
    status: TurnStatus | None,
) -> None:
    await store.start_turn(thread_id, turn_id, updated_at=T0)
    for item in items:
        await store.put_item(thread_id, turn_id, item)
    if status is not None:
        await store.finish_turn(thread_id, turn_id, status=status, error=None, updated_at=T0)


async def test_load_state_reads_the_record_and_the_turn_statuses(store: Store) -> None:
    assert await store.load_state("nope") is None
    await store.create_thread(make_thread(1, id="t"))
    empty = await store.load_state("t")
    assert empty is not None
    assert (empty.record.id, empty.running_turn_ids, empty.last_turn_status) == ("t", [], None)
    await turn(store, "t", "a", [user("1"), agent("1")], None)  # cut off by a crash
    await turn(store, "t", "b", [user("2")], "completed")
    await turn(store, "t", "c", [user("3")], None)
    await turn(store, "t", "d", [user("4")], "failed")
    state = await store.load_state("t")
    assert state is not None
    assert state.record == await store.get_thread("t")
    assert (state.running_turn_ids, state.last_turn_status) == (["a", "c"], "failed")
    await store.finish_turn("t", "c", status="interrupted", error=None, updated_at=T0)
    again = await store.load_state("t")
    assert again is not None and again.running_turn_ids == ["a"]


async def test_summary_pages_hold_the_summary_view_of_every_turn(store: Store) -> None:
    await store.create_thread(make_thread(1, id="t"))
    histories: dict[str, tuple[list[dict[str, Any]], TurnStatus | None]] = {
        "a": ([user("1"), agent("1a"), command("1"), agent("1b")], "completed"),
        "b": ([user("2"), agent("2"), user("2s")], "completed"),  # a steered message
        "c": ([user("3"), agent("3")], "interrupted"),  # no final answer shown
        "d": ([user("4"), command("4")], "completed"),  # no agent message
        "e": ([agent("5a"), user("5"), agent("5b")], "failed"),
        "f": ([user("6"), agent("6")], None),  # in progress
    }
    for turn_id, (items, status) in histories.items():
        await turn(store, "t", turn_id, items, status)
    full = await store.list_turns("t", limit=10, direction="asc")
    summary = await store.list_turn_summaries("t", limit=10, direction="asc")
    assert [t.id for t in summary.turns] == [t.id for t in full.turns]
    for whole, short in zip(full.turns, summary.turns, strict=True):
        assert short.items == summary_items(whole.status, whole.items)
        assert (short.status, short.error) == (whole.status, whole.error)
    assert summary.turns[0].items == [user("1"), agent("1b")]
    assert summary.turns[1].items == [user("2"), user("2s"), agent("2")]
    assert [t.items for t in summary.turns[2:]] == [
        [user("3")],
        [user("4")],
        [user("5")],
        [user("6")],
    ]


async def test_summary_pages_page_as_turn_pages(store: Store) -> None:
    await store.create_thread(make_thread(1, id="t"))
    for n in range(5):
        await turn(store, "t", f"turn{n}", [user(str(n)), agent(str(n))], "completed")
    first = await store.list_turn_summaries("t", limit=2)
    same = await store.list_turns("t", limit=2, with_items=False)
    assert (first.next_cursor, first.backwards_cursor) == (same.next_cursor, same.backwards_cursor)
    seen, cursor = [t.id for t in first.turns], first.next_cursor
    while cursor is not None:
        page = await store.list_turn_summaries("t", limit=2, cursor=cursor)
        seen += [t.id for t in page.turns]
        cursor = page.next_cursor
    assert seen == [f"turn{n}" for n in reversed(range(5))]
    with pytest.raises(InvalidCursor):
        await store.list_turn_summaries("t", limit=2, cursor="bogus")
    assert (await store.list_turn_summaries("unknown", limit=2)).turns == []


def make_v3_store(path: pathlib.Path) -> None:
    """A schema 3 database with a thread of two turns (as appserver 3 wrote them)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER)"
        )
        for version, statements in MIGRATIONS[:3]:
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (version,))
        conn.execute(
            "INSERT INTO threads (id, preview, name, model_provider, model, cwd, created_at, "
            "updated_at, archived, preview_fold, name_fold) "
            "VALUES ('t', '', NULL, 'builtin', 'script', '/w', 10, 10, 0, '', NULL)"
        )
        conn.execute("INSERT INTO thread_settings VALUES ('t', '{}')")
        for seq, (turn_id, status) in enumerate([("a", "completed"), ("b", "inProgress")], 1):
            conn.execute(
                "INSERT INTO turns (seq, thread_id, id, status) VALUES (?, 't', ?, ?)",
                (seq, turn_id, status),
            )
            for item in (user(turn_id), command(turn_id), agent(turn_id)):
                conn.execute(
                    "INSERT INTO items (turn_seq, id, body) VALUES (?, ?, ?)",
                    (seq, item["id"], json.dumps(item)),
                )
    finally:
        conn.close()


async def test_schema_4_indexes_items_written_before_it(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "appserver.sqlite3"
    make_v3_store(path)
    async with open_sqlite_store(path) as store:  # migrates; the crashed turn is finished
        state = await store.load_state("t")
        assert state is not None and state.running_turn_ids == []
        assert state.last_turn_status == "interrupted"
        page = await store.list_turn_summaries("t", limit=5, direction="asc")
        assert [t.items for t in page.turns] == [[user("a"), agent("a")], [user("b")]]
        await turn(store, "t", "c", [user("c"), agent("c")], "completed")  # written by v4
        newest = await store.list_turn_summaries("t", limit=1)
        assert newest.turns[0].items == [user("c"), agent("c")]
    conn = sqlite3.connect(path)
    try:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations")]
        plan = " ".join(
            str(row[-1])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT body FROM items INDEXED BY items_by_type "
                "WHERE turn_seq = 1 AND type = 'agentMessage' ORDER BY seq DESC LIMIT 1"
            )
        )
    finally:
        conn.close()
    assert versions == list(range(1, SCHEMA_VERSION + 1)) and 4 in versions
    assert "items_by_type" in plan and "TEMP B-TREE" not in plan
