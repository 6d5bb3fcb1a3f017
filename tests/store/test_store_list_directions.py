"""list_page contract, Codex 0.171 params: both directions, the recency_at key, the thread
id and multi-cwd filters, backwards cursors and their stability (both stores)."""

from __future__ import annotations

import random
from typing import Any

import attrs
import pytest

from appserver.store import (
    InvalidCursor,
    ListQuery,
    MemoryStore,
    SortKey,
    SqliteStore,
    ThreadRecord,
)
from appserver.store.base import SortDirection
from appserver.store.postgres import PostgresStore

from .helpers import make_thread

Store = MemoryStore | SqliteStore | PostgresStore
SORT_KEYS: list[SortKey] = ["created_at", "updated_at", "recency_at"]
DIRECTIONS: list[SortDirection] = ["desc", "asc"]


def order(records: list[ThreadRecord], key: SortKey, direction: SortDirection) -> list[str]:
    ranked = sorted(records, key=lambda r: (getattr(r, key), r.id))
    return [r.id for r in (reversed(ranked) if direction == "desc" else ranked)]


async def ids_of(store: Store, query: ListQuery) -> tuple[list[str], str | None, str | None]:
    page = await store.list_page(query)
    return [t.id for t in page.threads], page.next_cursor, page.backwards_cursor


async def walk(store: Store, query: ListQuery) -> list[str]:
    seen: list[str] = []
    cursor = query.cursor
    for _ in range(1000):
        ids, cursor, _ = await ids_of(store, attrs.evolve(query, cursor=cursor))
        seen += ids
        if cursor is None:
            return seen
    raise AssertionError("paging does not end")


async def fill(store: Store, count: int = 41, seed: int = 3) -> list[ThreadRecord]:
    """Threads with many ties on every key, inserted in shuffled order."""
    rng = random.Random(seed)
    records = [
        make_thread(
            n,
            created_at=100 + n // 3,
            updated_at=500 - n // 4,
            recency_at=300 + rng.randrange(12),
        )
        for n in range(count)
    ]
    rng.shuffle(records)
    for record in records:
        await store.create_thread(record)
    return records


@pytest.mark.parametrize("key", SORT_KEYS)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("limit", [1, 6, 41, 100])
async def test_both_directions_cover_every_thread_once_in_order(
    store: Store, key: SortKey, direction: SortDirection, limit: int
) -> None:
    records = await fill(store)
    query = ListQuery(limit=limit, sort_key=key, direction=direction)
    assert await walk(store, query) == order(records, key, direction)


async def test_recency_at_moves_on_turn_start_only(store: Store) -> None:
    record = make_thread(1, created_at=10, updated_at=10)
    assert record.recency_at == 10  # defaults to created_at
    await store.create_thread(record)
    await store.start_turn(record.id, "t1", updated_at=20)
    await store.finish_turn(record.id, "t1", status="completed", error=None, updated_at=25)
    await store.update_thread(record.id, name="renamed", archived=True, updated_at=30)
    await store.update_thread(record.id, archived=False, updated_at=31)
    got = await store.get_thread(record.id)
    assert got is not None and (got.updated_at, got.recency_at) == (31, 20)
    page = await store.list_page(ListQuery(sort_key="recency_at"))
    assert [(t.id, t.recency_at) for t in page.threads] == [(record.id, 20)]


async def test_id_and_cwd_filters(store: Store) -> None:
    records = [make_thread(n, cwd=f"/w{n % 3}") for n in range(12)]
    for record in records:
        await store.create_thread(record)
    ids = [r.id for r in records]

    async def listed(**filters: Any) -> list[int]:
        query = attrs.evolve(ListQuery(limit=100, direction="asc"), **filters)
        return [ids.index(i) for i in (await ids_of(store, query))[0]]

    assert await listed(cwd=("/w0", "/w2")) == [n for n in range(12) if n % 3 != 1]
    assert await listed(cwd=("/w1",)) == await listed(cwd="/w1") == [1, 4, 7, 10]
    assert await listed(cwd=()) == []
    assert await listed(included_ids=(ids[5], ids[2], ids[2], "missing")) == [2, 5]
    assert await listed(included_ids=()) == []
    assert await listed(included_ids=(ids[5], ids[2]), excluded_ids=(ids[5],)) == [2]
    assert await listed(excluded_ids=tuple(ids[:10])) == [10, 11]
    assert await listed(excluded_ids=(ids[0], "\ud800")) == list(range(1, 12))
    assert await listed(included_ids=("\ud800",)) == []
    assert await listed(cwd=("\ud800",)) == []
    assert await listed(included_ids=tuple(ids), cwd=("/w0",), excluded_ids=(ids[3],)) == [
        0,
        6,
        9,
    ]
    await store.update_thread(ids[4], archived=True)
    assert await listed(included_ids=(ids[4],)) == []
    assert await listed(included_ids=(ids[4],), archived=True) == [4]


@pytest.mark.parametrize("key", SORT_KEYS)
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_included_ids_page_like_any_listing(
    store: Store, key: SortKey, direction: SortDirection
) -> None:
    records = await fill(store)
    chosen = records[::3]
    query = ListQuery(
        limit=4, sort_key=key, direction=direction, included_ids=tuple(r.id for r in chosen)
    )
    assert await walk(store, query) == order(chosen, key, direction)


@pytest.mark.parametrize("key", SORT_KEYS)
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_backwards_cursor_round_trip(
    store: Store, key: SortKey, direction: SortDirection
) -> None:
    """Each page's backwardsCursor, used with the other direction, lists from that page's
    first thread back to the start, with every thread tied with it on the key."""
    records = await fill(store)
    by_id = {r.id: r for r in records}
    other: SortDirection = "asc" if direction == "desc" else "desc"
    query = ListQuery(limit=5, sort_key=key, direction=direction)
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor, backwards = await ids_of(store, attrs.evolve(query, cursor=cursor))
        assert backwards is not None
        first = getattr(by_id[page[0]], key)
        ties = [i for i in order(records, key, direction) if getattr(by_id[i], key) == first]
        back = attrs.evolve(query, direction=other, cursor=backwards)
        expected = list(reversed(seen + page[:1]))
        walked = await walk(store, back)
        assert [i for i in walked if i not in ties] == [i for i in expected if i not in ties]
        assert set(ties) <= set(walked)  # same-key threads are not skipped
        assert walked == order([by_id[i] for i in set(expected) | set(ties)], key, other)
        seen += page
        if cursor is None:
            break
    assert seen == order(records, key, direction)


async def test_backwards_cursor_only_for_pages_with_threads(store: Store) -> None:
    assert await ids_of(store, ListQuery()) == ([], None, None)
    await store.create_thread(make_thread(1))
    ids, next_cursor, backwards = await ids_of(store, ListQuery())
    assert ids == [make_thread(1).id] and next_cursor is None and backwards is not None
    # forwards from the newest thread's anchor: that thread again (ties are included)
    again = await ids_of(store, ListQuery(direction="asc", cursor=backwards))
    assert again[0] == ids
    assert (await ids_of(store, ListQuery(archived=True)))[2] is None


@pytest.mark.parametrize("key", SORT_KEYS)
async def test_next_cursor_with_the_other_direction_is_a_position(
    store: Store, key: SortKey
) -> None:
    """As in Codex, a cursor is a position: the other direction goes the other way from
    it, without the thread it names."""
    records = await fill(store)
    desc = order(records, key, "desc")
    _, cursor, _ = await ids_of(store, ListQuery(limit=10, sort_key=key))
    back = await walk(store, ListQuery(limit=3, sort_key=key, direction="asc", cursor=cursor))
    assert back == list(reversed(desc[:9]))


@pytest.mark.parametrize("key", ["updated_at", "recency_at"])
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_mutable_keys_walk_a_frozen_order_both_ways(
    store: Store, key: SortKey, direction: SortDirection
) -> None:
    """Threads created or updated mid-walk neither repeat nor skip a thread in either
    direction, nor in the backwards walk from any page."""
    records = await fill(store)
    frozen = order(records, key, direction)
    rng = random.Random(key + direction)
    query = ListQuery(limit=4, sort_key=key, direction=direction)
    pages: list[list[str]] = []
    backwards: list[str] = []
    late: list[ThreadRecord] = []
    cursor = None
    created = 1000
    while True:
        page, cursor, back = await ids_of(store, attrs.evolve(query, cursor=cursor))
        pages.append(page)
        assert back is not None
        backwards.append(back)
        for _ in range(4):
            thread_id = rng.choice(frozen)
            action = rng.randrange(4)
            if action == 0:
                await store.update_thread(thread_id, updated_at=rng.randrange(2000))
            elif action == 1:
                await store.start_turn(thread_id, f"t{created}", updated_at=rng.randrange(2000))
            elif action == 2:
                await store.update_thread(thread_id, name=f"n{created}")
            else:
                new = make_thread(created, updated_at=rng.randrange(2000), created_at=created)
                await store.create_thread(new)
                late.append(new)  # in the frozen order at its first key
            created += 1
        if cursor is None:
            break
    seen = [i for page in pages for i in page]
    assert [i for i in seen if i in frozen] == frozen
    assert len(seen) == len(set(seen))
    other: SortDirection = "asc" if direction == "desc" else "desc"
    everything = records + late
    by_id = {r.id: r for r in everything}
    for page, back in zip(pages, backwards, strict=True):
        anchor = getattr(by_id[page[0]], key)  # its key when the walk began
        behind = [
            r
            for r in everything
            if (getattr(r, key) >= anchor if direction == "desc" else getattr(r, key) <= anchor)
        ]
        walked = await walk(store, attrs.evolve(query, direction=other, cursor=back))
        assert [i for i in walked if i in by_id] == order(behind, key, other)
        assert len(walked) == len(set(walked))


async def test_cursor_for_another_key_is_rejected(store: Store) -> None:
    await fill(store, 6)
    for key in SORT_KEYS:
        page = await store.list_page(ListQuery(limit=2, sort_key=key))
        for cursor in (page.next_cursor, page.backwards_cursor):
            for other in SORT_KEYS:
                query = ListQuery(sort_key=other, cursor=cursor)
                if other == key:
                    await store.list_page(query)
                else:
                    with pytest.raises(InvalidCursor, match="sortKey"):
                        await store.list_page(query)


async def test_expired_recency_cursor_is_rejected(store: Store) -> None:
    records = await fill(store, 8)
    page = await store.list_page(ListQuery(limit=2, sort_key="recency_at", direction="asc"))
    await store.start_turn(records[0].id, "t", updated_at=99_999)
    assert await store.prune_history(max_age_seconds=-1) == 1
    for cursor in (page.next_cursor, page.backwards_cursor):
        with pytest.raises(InvalidCursor, match="expired"):
            await store.list_page(ListQuery(sort_key="recency_at", cursor=cursor))
