"""ThreadStore contract for the thread lifecycle writes (import_thread for forks,
delete_thread, revert_thread, inject_items / get_injected_items), against MemoryStore and
SqliteStore alike."""

from __future__ import annotations

import contextlib
import pathlib
import sqlite3
from typing import Any

import attrs
import pytest

from appserver.store import (
    AlreadyStored,
    InvalidCursor,
    ListQuery,
    MemoryStore,
    SqliteStore,
    ThreadNotStored,
    TurnNotStored,
    TurnRecord,
)
from appserver.store.base import InjectedItem
from appserver.store.pages import decode_position
from appserver.store.postgres import PostgresStore

from .helpers import make_thread

Store = MemoryStore | SqliteStore | PostgresStore


def item(n: int, kind: str = "agentMessage") -> dict[str, Any]:
    return {"type": kind, "id": f"item-{n}", "text": f"text {n}"}


async def history(store: Store, thread_id: str, turns: int, per_turn: int = 2) -> list[str]:
    """`turns` completed turns of `per_turn` items each; their ids."""
    ids = []
    for t in range(turns):
        turn_id = f"turn-{t}"
        await store.start_turn(thread_id, turn_id, updated_at=1_800_000_000 + t)
        for i in range(per_turn):
            await store.put_item(thread_id, turn_id, item(t * 10 + i))
        await store.finish_turn(
            thread_id, turn_id, status="completed", error=None, updated_at=1_800_000_000 + t
        )
        ids.append(turn_id)
    return ids


async def test_import_thread_copies_turns_with_their_ids(store: Store) -> None:
    source = make_thread(1)
    await store.create_thread(source)
    await history(store, source.id, 2)
    turns = await store.get_turns(source.id)
    running = TurnRecord(
        id="turn-live",
        thread_id=source.id,
        status="interrupted",
        items=[item(99)],
        started_at_ms=5,
    )
    fork = make_thread(2, settings={"forkedFromId": source.id})
    await store.import_thread(fork, [attrs.evolve(t, thread_id=fork.id) for t in turns] + [running])
    assert await store.get_thread(fork.id) == fork
    copied = await store.get_turns(fork.id)
    assert [(t.id, t.status, t.items) for t in copied] == [
        *((t.id, t.status, t.items) for t in turns),
        ("turn-live", "interrupted", [item(99)]),
    ]
    assert copied[-1].started_at_ms == 5 and copied[-1].completed_at_ms is None
    # The copy is a thread of its own: paging, writes and the source are independent.
    page = await store.list_turns(fork.id, limit=10, direction="asc")
    assert [t.id for t in page.turns] == ["turn-0", "turn-1", "turn-live"]
    items = await store.list_items(fork.id, limit=10)
    assert [e.item["id"] for e in items.items][-1] == "item-99"
    await store.put_item(fork.id, "turn-0", item(1000))
    assert item(1000) not in (await store.get_turns(source.id))[0].items
    with pytest.raises(AlreadyStored):
        await store.import_thread(fork, [])
    assert [r.id for r in (await store.list_threads(ListQuery()))[0]] == [fork.id, source.id]


async def test_delete_thread_removes_everything(store: Store) -> None:
    keep, gone = make_thread(1), make_thread(2)
    for record in (keep, gone):
        await store.create_thread(record)
        await history(store, record.id, 2)
    await store.inject_items(gone.id, [{"type": "message", "role": "user", "content": []}])
    await store.update_thread(gone.id, updated_at=1_900_000_000)
    assert await store.delete_thread(gone.id) is True
    assert await store.get_thread(gone.id) is None
    assert await store.get_turns(gone.id) == []
    assert await store.get_injected_items(gone.id) == []
    assert (await store.list_items(gone.id, limit=10)).items == []
    assert [r.id for r in (await store.list_threads(ListQuery()))[0]] == [keep.id]
    assert await store.delete_thread(gone.id) is False
    assert len(await store.get_turns(keep.id)) == 2
    await store.prune_history(0)  # history of a deleted thread is no trouble
    with pytest.raises(ThreadNotStored):
        await store.update_thread(gone.id, name="x")
    await store.create_thread(gone)  # the id can be used again
    assert await store.get_turns(gone.id) == []


async def test_revert_thread_keeps_the_prefix(store: Store) -> None:
    record = make_thread(1)
    await store.create_thread(record)
    turns = await history(store, record.id, 3)
    await store.inject_items(record.id, [{"type": "a"}])  # after turn-2: reverted away
    reverted = await store.revert_thread(record.id, turns[1], updated_at=1_950_000_000)
    assert [t.id for t in await store.get_turns(record.id)] == ["turn-0"]
    assert await store.get_injected_items(record.id) == []
    got = await store.get_thread(record.id)
    assert got is not None and got.updated_at == 1_950_000_000
    # The cursors are inclusive anchors at the last turn and item that are left.
    assert reverted.turns_backwards_cursor is not None
    assert reverted.items_backwards_cursor is not None
    assert decode_position(reverted.turns_backwards_cursor, "turns", record.id).inclusive
    page = await store.list_turns(record.id, limit=5, cursor=reverted.turns_backwards_cursor)
    assert [t.id for t in page.turns] == ["turn-0"]
    items = await store.list_items(
        record.id, limit=5, cursor=reverted.items_backwards_cursor, direction="desc"
    )
    assert [e.item["id"] for e in items.items] == ["item-1", "item-0"]
    # New turns follow the prefix; an old cursor of a dropped turn still parses.
    await store.start_turn(record.id, "turn-new", updated_at=1_960_000_000)
    assert [t.id for t in await store.get_turns(record.id)] == ["turn-0", "turn-new"]
    with pytest.raises(TurnNotStored):
        await store.revert_thread(record.id, "turn-2", updated_at=1)
    with pytest.raises(ThreadNotStored):
        await store.revert_thread("missing", "turn-0", updated_at=1)
    with pytest.raises(InvalidCursor):
        await store.list_turns("other", limit=1, cursor=reverted.turns_backwards_cursor)
    empty = await store.revert_thread(record.id, "turn-0", updated_at=1_970_000_000)
    assert (empty.turns_backwards_cursor, empty.items_backwards_cursor) == (None, None)
    assert await store.get_turns(record.id) == []


async def test_injected_items_keep_their_place_among_turns(store: Store) -> None:
    record = make_thread(1)
    await store.create_thread(record)
    first = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"}]}
    await store.inject_items(record.id, [first])
    turns = await history(store, record.id, 2)
    await store.inject_items(record.id, [{"type": "b"}, {"type": "c", "n": [1, None]}])
    assert await store.get_injected_items(record.id) == [
        InjectedItem(after_turn_id=None, item=first),
        InjectedItem(after_turn_id=turns[1], item={"type": "b"}),
        InjectedItem(after_turn_id=turns[1], item={"type": "c", "n": [1, None]}),
    ]
    # Not part of the turns' items, nor of the item pages.
    assert all(
        i["id"].startswith("item-") for t in await store.get_turns(record.id) for i in t.items
    )
    await store.revert_thread(record.id, turns[0], updated_at=1)
    assert await store.get_injected_items(record.id) == [
        InjectedItem(after_turn_id=None, item=first)
    ]
    with pytest.raises(ThreadNotStored):
        await store.inject_items("missing", [{"type": "x"}])
    assert await store.get_injected_items("missing") == []


async def test_sqlite_delete_leaves_no_row(db_path: pathlib.Path) -> None:
    from appserver.store import open_sqlite_store

    async with open_sqlite_store(db_path) as store:
        record = make_thread(7)
        await store.create_thread(record)
        await history(store, record.id, 2)
        await store.inject_items(record.id, [{"type": "x"}])
        await store.update_thread(record.id, updated_at=1_990_000_000)
        assert await store.delete_thread(record.id)
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        counts = {
            table: db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            for table in tables
            if table not in ("schema_migrations", "store_state")
        }
    assert "injected_items" in counts
    assert set(counts.values()) == {0}, counts
