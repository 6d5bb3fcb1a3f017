"""list_turns / list_items: keyset pages of a thread's history, memory and SQLite alike."""

from __future__ import annotations

import pytest

from appserver.store import InvalidCursor, MemoryStore, SqliteStore
from appserver.store.base import UnknownItemAnchor
from appserver.store.pages import encode_position
from appserver.store.postgres import PostgresStore

from .helpers import make_thread

Store = MemoryStore | SqliteStore | PostgresStore


async def _history(store: Store, thread_id: str, turns: int, items: int = 2) -> None:
    await store.create_thread(make_thread(1, id=thread_id))
    for t in range(turns):
        await store.start_turn(thread_id, f"turn{t:03d}", updated_at=1_700_000_100 + t)
        for i in range(items):
            await store.put_item(thread_id, f"turn{t:03d}", {"id": f"item{t:03d}.{i}", "n": i})
        await store.finish_turn(
            thread_id, f"turn{t:03d}", status="completed", error=None, updated_at=1_700_000_100
        )


async def test_turn_pages_walk_both_ways_and_stay_stable_while_turns_are_added(
    store: Store,
) -> None:
    await _history(store, "t", 5)
    page = await store.list_turns("t", limit=2)
    assert [t.id for t in page.turns] == ["turn004", "turn003"]
    assert [i["id"] for i in page.turns[0].items] == ["item004.0", "item004.1"]
    await store.start_turn("t", "turn005", updated_at=1_700_000_200)  # added mid-walk
    seen = [t.id for t in page.turns]
    cursor = page.next_cursor
    while cursor is not None:
        page = await store.list_turns("t", limit=2, cursor=cursor)
        seen += [t.id for t in page.turns]
        cursor = page.next_cursor
    assert seen == ["turn004", "turn003", "turn002", "turn001", "turn000"]
    # the last page's backwards cursor, ascending, includes its first turn again
    back = await store.list_turns("t", limit=10, cursor=page.backwards_cursor, direction="asc")
    assert [t.id for t in back.turns] == [f"turn{n:03d}" for n in range(6)]
    assert back.next_cursor is None
    asc = await store.list_turns("t", limit=3, direction="asc", with_items=False)
    assert [t.id for t in asc.turns] == ["turn000", "turn001", "turn002"]
    assert all(t.items == [] for t in asc.turns) and asc.turns[0].status == "completed"


async def test_item_pages_of_a_thread_and_of_one_turn(store: Store) -> None:
    await _history(store, "t", 3)
    await store.put_item("t", "turn000", {"id": "item000.0", "n": 9})  # keeps its place
    first = await store.list_items("t", limit=4)
    assert [(e.turn_id, e.item["id"]) for e in first.items] == [
        ("turn000", "item000.0"),
        ("turn000", "item000.1"),
        ("turn001", "item001.0"),
        ("turn001", "item001.1"),
    ]
    assert first.items[0].item["n"] == 9
    rest = await store.list_items("t", limit=4, cursor=first.next_cursor)
    assert [e.item["id"] for e in rest.items] == ["item002.0", "item002.1"]
    assert rest.next_cursor is None
    desc = await store.list_items("t", limit=1, direction="desc", turn_id="turn001")
    assert [e.item["id"] for e in desc.items] == ["item001.1"]
    after = await store.list_items("t", limit=5, turn_id="turn001", after_item="item001.0")
    assert [e.item["id"] for e in after.items] == ["item001.1"]
    with pytest.raises(UnknownItemAnchor):
        await store.list_items("t", limit=5, turn_id="turn001", after_item="nope")
    unknown = await store.list_items("t", limit=5, turn_id="nope")
    assert unknown.items == [] and unknown.backwards_cursor is None
    assert (await store.list_items("other", limit=5)).items == []
    assert (await store.list_turns("other", limit=5)).turns == []


@pytest.mark.parametrize(
    "cursor",
    ["garbage", "", encode_position("items", "t", 1, inclusive=False)],
)
async def test_foreign_or_malformed_cursors_are_refused(store: Store, cursor: str) -> None:
    await _history(store, "t", 1)
    with pytest.raises(InvalidCursor):
        await store.list_turns("t", limit=1, cursor=cursor)
    with pytest.raises(InvalidCursor):
        await store.list_items(
            "t", limit=1, cursor=encode_position("turns", "t", 1, inclusive=False)
        )
    other = encode_position("turns", "u", 1, inclusive=False)
    with pytest.raises(InvalidCursor):
        await store.list_turns("t", limit=1, cursor=other)
