"""ThreadStore contract (threads, turns, items), run against the memory, SQLite and
PostgreSQL stores."""

from __future__ import annotations

import pytest
import trio

from appserver.store import (
    AlreadyStored,
    MemoryStore,
    SqliteStore,
    StoreClosed,
    ThreadNotStored,
    ThreadStore,
    TurnNotStored,
    TurnRecord,
)
from appserver.store.postgres import PostgresStore

from .helpers import make_thread

Store = MemoryStore | SqliteStore | PostgresStore


def test_both_stores_implement_the_protocol() -> None:
    # checked by mypy: every store class must be assignable to ThreadStore
    stores: list[type[ThreadStore]] = [MemoryStore, SqliteStore, PostgresStore]
    assert len(stores) == 3


async def test_create_and_get_round_trip(store: Store) -> None:
    record = make_thread(
        1,
        name="Ünïcode ✓",
        archived=True,
        settings={"config": {"nested": [1, 2.5, None, "x"]}, "sandbox": "read-only"},
    )
    await store.create_thread(record)
    assert await store.get_thread(record.id) == record
    assert await store.get_thread("missing") is None


async def test_stored_values_are_not_shared_with_the_caller(store: Store) -> None:
    record = make_thread(1, settings={"config": {"a": 1}})
    await store.create_thread(record)
    record.settings["config"]["a"] = 2
    got = await store.get_thread(record.id)
    assert got is not None and got.settings == {"config": {"a": 1}}
    got.settings["config"]["a"] = 3
    again = await store.get_thread(record.id)
    assert again is not None and again.settings == {"config": {"a": 1}}


async def test_create_duplicate_id_fails(store: Store) -> None:
    await store.create_thread(make_thread(1))
    with pytest.raises(AlreadyStored):
        await store.create_thread(make_thread(1, preview="other"))
    got = await store.get_thread(make_thread(1).id)
    assert got is not None and got.preview == "preview 1"


async def test_update_thread_fields(store: Store) -> None:
    base = make_thread(1)
    await store.create_thread(base)
    await store.update_thread(base.id, name="first name")
    await store.update_thread(base.id, preview="new preview", updated_at=base.updated_at + 50)
    await store.update_thread(base.id, archived=True, settings={"sandbox": "read-only"})
    got = await store.get_thread(base.id)
    assert got is not None
    assert (got.name, got.preview, got.updated_at) == (
        "first name",
        "new preview",
        base.updated_at + 50,
    )
    assert got.archived is True and got.settings == {"sandbox": "read-only"}
    assert (got.created_at, got.cwd, got.model, got.model_provider) == (
        base.created_at,
        base.cwd,
        base.model,
        base.model_provider,
    )
    await store.update_thread(base.id, name=None, archived=False)
    got = await store.get_thread(base.id)
    assert got is not None and got.name is None and got.archived is False
    assert got.preview == "new preview"


async def test_update_unknown_thread_fails(store: Store) -> None:
    with pytest.raises(ThreadNotStored):
        await store.update_thread("nope", name="x")
    with pytest.raises(ThreadNotStored):
        await store.update_thread("nope")


async def test_turn_lifecycle(store: Store) -> None:
    thread = make_thread(1)
    await store.create_thread(thread)
    await store.start_turn(thread.id, "turn-b", updated_at=thread.updated_at + 10, preview="hi")
    got = await store.get_thread(thread.id)
    assert got is not None and (got.updated_at, got.preview) == (thread.updated_at + 10, "hi")
    assert await store.get_turns(thread.id) == [
        TurnRecord(id="turn-b", thread_id=thread.id, status="inProgress")
    ]
    error = {"message": "boom", "codexErrorInfo": None, "additionalDetails": None}
    await store.finish_turn(
        thread.id, "turn-b", status="failed", error=error, updated_at=thread.updated_at + 20
    )
    # turns keep insertion order even when ids sort the other way
    await store.start_turn(thread.id, "turn-a", updated_at=thread.updated_at + 30)
    got = await store.get_thread(thread.id)
    assert got is not None and (got.updated_at, got.preview) == (thread.updated_at + 30, "hi")
    turns = await store.get_turns(thread.id)
    assert [(t.id, t.status, t.error) for t in turns] == [
        ("turn-b", "failed", error),
        ("turn-a", "inProgress", None),
    ]
    await store.finish_turn(
        thread.id, "turn-a", status="completed", error=None, updated_at=thread.updated_at + 40
    )
    turns = await store.get_turns(thread.id)
    assert [t.status for t in turns] == ["failed", "completed"]
    got = await store.get_thread(thread.id)
    assert got is not None and got.updated_at == thread.updated_at + 40


async def test_turn_errors(store: Store) -> None:
    thread = make_thread(1)
    await store.create_thread(thread)
    with pytest.raises(ThreadNotStored):
        await store.start_turn("nope", "t1", updated_at=1)
    await store.start_turn(thread.id, "t1", updated_at=1)
    with pytest.raises(AlreadyStored):
        await store.start_turn(thread.id, "t1", updated_at=2)
    with pytest.raises(TurnNotStored):
        await store.finish_turn(thread.id, "t2", status="completed", error=None, updated_at=3)
    with pytest.raises(ThreadNotStored):
        await store.finish_turn("nope", "t1", status="completed", error=None, updated_at=3)
    with pytest.raises(TurnNotStored):
        await store.put_item(thread.id, "t2", {"id": "i1"})
    with pytest.raises(ThreadNotStored):
        await store.put_item("nope", "t1", {"id": "i1"})
    with pytest.raises(ValueError):
        await store.put_item(thread.id, "t1", {"type": "agentMessage"})
    got = await store.get_thread(thread.id)
    assert got is not None and got.updated_at == 1  # failed calls changed nothing
    assert [t.status for t in await store.get_turns(thread.id)] == ["inProgress"]
    assert await store.get_turns("nope") == []


async def test_items_keep_order_and_upsert_keeps_position(store: Store) -> None:
    thread = make_thread(1)
    await store.create_thread(thread)
    await store.start_turn(thread.id, "t1", updated_at=1)
    await store.start_turn(thread.id, "t2", updated_at=2)
    for item_id in ["z", "a", "m"]:
        await store.put_item(thread.id, "t1", {"id": item_id, "type": "agentMessage", "text": ""})
    await store.put_item(thread.id, "t2", {"id": "a", "type": "reasoning", "summary": ["x"]})
    await store.put_item(thread.id, "t1", {"id": "a", "type": "agentMessage", "text": "done"})
    turns = await store.get_turns(thread.id)
    assert [[item["id"] for item in t.items] for t in turns] == [["z", "a", "m"], ["a"]]
    assert turns[0].items[1] == {"id": "a", "type": "agentMessage", "text": "done"}
    assert turns[1].items == [{"id": "a", "type": "reasoning", "summary": ["x"]}]


async def test_put_item_does_not_touch_updated_at(store: Store) -> None:
    thread = make_thread(1)
    await store.create_thread(thread)
    await store.start_turn(thread.id, "t1", updated_at=thread.updated_at + 1)
    await store.put_item(thread.id, "t1", {"id": "i"})
    got = await store.get_thread(thread.id)
    assert got is not None and got.updated_at == thread.updated_at + 1


async def test_interrupt_running_turns(store: Store) -> None:
    for n in (1, 2):
        await store.create_thread(make_thread(n))
    one, two = make_thread(1).id, make_thread(2).id
    await store.start_turn(one, "a", updated_at=1)
    await store.start_turn(one, "b", updated_at=2)
    await store.finish_turn(one, "a", status="completed", error=None, updated_at=3)
    await store.start_turn(two, "c", updated_at=4)
    assert await store.interrupt_running_turns() == 2
    assert [t.status for t in await store.get_turns(one)] == ["completed", "interrupted"]
    assert [t.status for t in await store.get_turns(two)] == ["interrupted"]
    assert await store.interrupt_running_turns() == 0


async def test_concurrent_writes_all_land(store: Store) -> None:
    thread = make_thread(1)
    await store.create_thread(thread)
    await store.start_turn(thread.id, "t", updated_at=1)

    async def put(n: int) -> None:
        await store.put_item(thread.id, "t", {"id": f"item-{n}"})
        await store.get_turns(thread.id)

    async with trio.open_nursery() as nursery:
        for n in range(40):
            nursery.start_soon(put, n)
    (turn,) = await store.get_turns(thread.id)
    assert sorted(item["id"] for item in turn.items) == sorted(f"item-{n}" for n in range(40))


async def test_closed_store_refuses_calls(store: Store) -> None:
    await store.create_thread(make_thread(1))
    await store.aclose()
    await store.aclose()  # idempotent
    with pytest.raises(StoreClosed):
        await store.get_thread(make_thread(1).id)
    with pytest.raises(StoreClosed):
        await store.create_thread(make_thread(2))
