"""list_threads contract: ordering, filters, pagination and cursor stability (both stores)."""

from __future__ import annotations

import base64
import contextlib
import json
import pathlib
import random

import attrs
import pytest

from appserver.store import (
    InvalidCursor,
    ListQuery,
    MemoryStore,
    SortKey,
    SqliteStore,
    ThreadRecord,
    open_sqlite_store,
)
from appserver.store.postgres import PostgresStore

from .helpers import flat, list_ids, make_thread, walk

Store = MemoryStore | SqliteStore | PostgresStore
SORT_KEYS: list[SortKey] = ["created_at", "updated_at"]


def expected_order(records: list[ThreadRecord], key: SortKey) -> list[str]:
    return [r.id for r in sorted(records, key=lambda r: (getattr(r, key), r.id), reverse=True)]


async def fill_with_ties(store: Store, count: int = 57) -> list[ThreadRecord]:
    """Threads whose timestamps collide a lot, inserted in shuffled order."""
    rng = random.Random(count)
    records = [
        make_thread(n, created_at=1000 + n // 4, updated_at=5000 - n // 3) for n in range(count)
    ]
    rng.shuffle(records)
    for record in records:
        await store.create_thread(record)
    return records


@pytest.mark.parametrize("key", SORT_KEYS)
async def test_newest_first_ties_by_id_descending(store: Store, key: SortKey) -> None:
    records = await fill_with_ties(store)
    ids, cursor = await list_ids(store, ListQuery(limit=100, sort_key=key))
    assert ids == expected_order(records, key)
    assert cursor is None


@pytest.mark.parametrize("key", SORT_KEYS)
@pytest.mark.parametrize("limit", [1, 7, 19, 57, 100])
async def test_pages_cover_every_thread_exactly_once(
    store: Store, key: SortKey, limit: int
) -> None:
    records = await fill_with_ties(store)
    pages = await walk(store, ListQuery(limit=limit, sort_key=key))
    assert flat(pages) == expected_order(records, key)
    assert all(len(page) == limit for page in pages[:-1])
    assert 1 <= len(pages[-1]) <= limit
    assert len(pages) == -(-len(records) // limit)  # no trailing empty page


async def test_empty_store_lists_nothing(store: Store) -> None:
    assert await store.list_threads(ListQuery()) == ([], None)


async def test_filters(store: Store) -> None:
    records = [
        make_thread(1, preview="Fix the PARSER", cwd="/a", model_provider="builtin"),
        make_thread(2, preview="unrelated", name="Parser notes", cwd="/a", model_provider="openai"),
        make_thread(3, preview="parse", name=None, cwd="/b", model_provider="builtin"),
        make_thread(4, preview="ÄRGER mit STRASSE", cwd="/a/", model_provider="other"),
        make_thread(5, preview="parser archived", cwd="/a", archived=True),
        make_thread(6, preview="", name="archived but named parser", cwd="/b", archived=True),
    ]
    for record in records:
        await store.create_thread(record)

    async def ids(**filters: object) -> set[int]:
        page, cursor = await store.list_threads(ListQuery(limit=100, **filters))  # type: ignore[arg-type]
        assert cursor is None
        return {int(t.id[4:]) for t in page}

    assert await ids() == {1, 2, 3, 4}
    assert await ids(archived=False) == {1, 2, 3, 4}
    assert await ids(archived=True) == {5, 6}
    assert await ids(cwd="/a") == {1, 2}
    assert await ids(cwd="/a", archived=True) == {5}
    assert await ids(cwd="/nowhere") == set()
    assert await ids(search_term="parser") == {1, 2}
    assert await ids(search_term="PaRsE") == {1, 2, 3}
    assert await ids(search_term="ärger") == {4}
    assert await ids(search_term="strasse") == {4}
    assert await ids(search_term="parser", archived=True) == {5, 6}
    assert await ids(search_term="notes") == {2}
    assert await ids(search_term="%") == set()
    assert await ids(search_term="_") == set()
    assert await ids(model_providers=("builtin",)) == {1, 3}
    assert await ids(model_providers=("builtin", "openai")) == {1, 2, 3}
    assert await ids(model_providers=()) == {1, 2, 3, 4}
    assert await ids(model_providers=("nobody",)) == set()
    assert await ids(search_term="pars", cwd="/a", model_providers=("openai",)) == {2}


async def test_filters_follow_updates(store: Store) -> None:
    await store.create_thread(make_thread(1))
    thread_id = make_thread(1).id
    await store.update_thread(thread_id, name="Renamed Thing")
    assert [t.id for t in (await store.list_threads(ListQuery(search_term="thing")))[0]] == [
        thread_id
    ]
    await store.start_turn(thread_id, "t", updated_at=1, preview="New Preview")
    assert (await store.list_threads(ListQuery(search_term="new prev")))[0][0].id == thread_id
    assert (await store.list_threads(ListQuery(search_term="preview 1")))[0] == []
    await store.update_thread(thread_id, archived=True)
    assert (await store.list_threads(ListQuery()))[0] == []
    assert [t.id for t in (await store.list_threads(ListQuery(archived=True)))[0]] == [thread_id]


@pytest.mark.parametrize("key", SORT_KEYS)
async def test_filtered_pagination(store: Store, key: SortKey) -> None:
    records = [
        make_thread(n, cwd=f"/w{n % 3}", created_at=n // 5, updated_at=n // 2, archived=n % 4 == 0)
        for n in range(60)
    ]
    for record in records:
        await store.create_thread(record)
    query = ListQuery(limit=4, sort_key=key, cwd="/w1", search_term="PREVIEW")
    wanted = [r for r in records if r.cwd == "/w1" and not r.archived]
    assert flat(await walk(store, query)) == expected_order(wanted, key)


async def test_created_at_cursor_is_stable_under_changes(store: Store) -> None:
    records = await fill_with_ties(store, 40)
    query = ListQuery(limit=6, sort_key="created_at")
    first, cursor = await list_ids(store, query)
    # new threads (newer, tied with the cursor, older), renames, turns and updates
    await store.create_thread(make_thread(900, created_at=1000 + 39 // 4 + 5))
    await store.create_thread(make_thread(901, created_at=records[0].created_at))
    for record in records[:10]:
        await store.update_thread(record.id, name="renamed", updated_at=9999)
        await store.start_turn(record.id, "t", updated_at=10_000)
    rest = flat(await walk(store, attrs.evolve(query, cursor=cursor)))
    seen = first + rest
    old = expected_order(records, "created_at")
    assert [i for i in seen if i in old] == old  # every old thread once, in order
    assert len(seen) == len(set(seen))


async def test_updated_at_cursor_is_stable_under_changes(store: Store) -> None:
    records = await fill_with_ties(store, 40)
    order = expected_order(records, "updated_at")
    query = ListQuery(limit=6, sort_key="updated_at")
    first, cursor = await list_ids(store, query)
    assert first == order[:6]
    # bump threads not seen yet (they jump to the top), threads already seen, some twice
    for thread_id in [order[20], order[2], order[35], order[20], order[6]]:
        await store.update_thread(thread_id, updated_at=20_000)
    await store.start_turn(order[30], "t", updated_at=20_001, preview="moved")
    await store.finish_turn(order[30], "t", status="completed", error=None, updated_at=20_002)
    await store.update_thread(order[7], name="renamed, no time change")
    await store.update_thread(order[8], updated_at=1)  # moved to the bottom
    await store.create_thread(make_thread(900, updated_at=30_000))
    second, cursor = await list_ids(store, attrs.evolve(query, cursor=cursor))
    await store.update_thread(order[25], updated_at=20_003)  # changes between later pages too
    assert cursor is not None
    rest = flat(await walk(store, attrs.evolve(query, cursor=cursor)))
    assert first + second + rest == order  # the order as of the first page, exactly
    # a fresh listing shows the current order
    fresh = flat(await walk(store, ListQuery(limit=100, sort_key="updated_at")))
    bumped = sorted([order[20], order[2], order[35], order[6]], reverse=True)
    assert fresh[:7] == [make_thread(900).id, order[25], order[30], *bumped]
    assert fresh[-1] == order[8]


async def test_thread_created_after_first_page_is_listed_once(store: Store) -> None:
    records = await fill_with_ties(store, 20)
    query = ListQuery(limit=5, sort_key="updated_at")
    first, cursor = await list_ids(store, query)
    late = make_thread(500, updated_at=0)  # older than everything: shows up at the end
    await store.create_thread(late)
    await store.update_thread(late.id, updated_at=40_000)
    rest = flat(await walk(store, attrs.evolve(query, cursor=cursor)))
    assert first + rest == [*expected_order(records, "updated_at"), late.id]


@pytest.mark.parametrize("key", SORT_KEYS)
async def test_random_changes_while_paging(store: Store, key: SortKey) -> None:
    rng = random.Random(7)
    records = [
        make_thread(n, created_at=rng.randrange(20), updated_at=rng.randrange(20))
        for n in range(80)
    ]
    for record in records:
        await store.create_thread(record)
    ids = [r.id for r in records]
    created = 1000
    pages, cursor = [], None
    query = ListQuery(limit=7, sort_key=key)
    while True:
        page, cursor = await list_ids(store, attrs.evolve(query, cursor=cursor))
        pages.append(page)
        if cursor is None:
            break
        for _ in range(5):
            action = rng.randrange(3)
            if action == 0:
                await store.update_thread(rng.choice(ids), updated_at=rng.randrange(40))
            elif action == 1:
                created += 1
                await store.create_thread(
                    make_thread(created, created_at=rng.randrange(40), updated_at=rng.randrange(40))
                )
            else:
                await store.update_thread(rng.choice(ids), name=f"n{rng.random()}")
    seen = flat(pages)
    assert len(seen) == len(set(seen)), "a thread was repeated"
    assert set(ids) <= set(seen), "a thread that existed when paging began was skipped"


async def test_cursor_survives_identical_timestamps(store: Store) -> None:
    for n in range(30):
        await store.create_thread(make_thread(n, created_at=7, updated_at=7))
    for key in SORT_KEYS:
        pages = await walk(store, ListQuery(limit=4, sort_key=key))
        assert flat(pages) == [make_thread(n).id for n in reversed(range(30))]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def valid_cursor(store: Store, key: SortKey) -> str:
    for n in range(3):
        await store.create_thread(make_thread(n))
    _, cursor = await store.list_threads(ListQuery(limit=1, sort_key=key))
    assert cursor is not None
    return cursor


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!not base64!!!",
        "abc",
        _b64(b"\xff\xfe not utf8"),
        _b64(b"not json"),
        _b64(b"[1, 2, 3]"),
        _b64(b'{"v": 1}'),
        _b64(b'{"v":1,"k":"created_at","t":"1","i":"x","s":0}'),
        _b64(b'{"v":1,"k":"created_at","t":1,"i":5,"s":0}'),
        _b64(b'{"v":1,"k":"created_at","t":1,"i":"x","s":-1}'),
        _b64(b'{"v":1,"k":"created_at","t":true,"i":"x","s":0}'),
        _b64(b'{"v":2,"k":"created_at","t":1,"i":"x","s":0}'),
        _b64(b'{"v":1,"k":"name","t":1,"i":"x","s":0}'),
        _b64(b'{"v":1,"k":"created_at","t":1,"i":"x","s":0,"extra":1}'),
        _b64(b'{"v":1,"k":"created_at","t":1,"i":"\\ud800","s":0}'),
        _b64(b'{"v":1,"k":"created_at","t":1e400,"i":"x","s":0}'),
        _b64(b'{"v":1,"k":"created_at","t":99999999999999999999999,"i":"x","s":0}'),
        _b64(b'{"v":1,"k":"created_at","t":1,"i":"x","s":99999}'),  # from the future
        "x" * 5000,
    ],
)
async def test_garbage_cursor_is_rejected(store: Store, cursor: str) -> None:
    await valid_cursor(store, "created_at")
    with pytest.raises(InvalidCursor, match="invalid cursor"):
        await store.list_threads(ListQuery(cursor=cursor))


async def test_cursor_for_the_other_sort_key_is_rejected(store: Store) -> None:
    created = await valid_cursor(store, "created_at")
    updated = (await store.list_threads(ListQuery(limit=1, sort_key="updated_at")))[1]
    with pytest.raises(InvalidCursor, match="sortKey"):
        await store.list_threads(ListQuery(cursor=created, sort_key="updated_at"))
    with pytest.raises(InvalidCursor, match="sortKey"):
        await store.list_threads(ListQuery(cursor=updated, sort_key="created_at"))
    payload = json.loads(base64.urlsafe_b64decode(created + "=" * (-len(created) % 4)))
    assert payload["k"] == "created_at"  # the format documented in appserver.store.cursor


async def test_expired_updated_at_cursor_is_rejected(store: Store) -> None:
    records = await fill_with_ties(store, 10)
    _, created_cursor = await store.list_threads(ListQuery(limit=2))
    _, updated_cursor = await store.list_threads(ListQuery(limit=2, sort_key="updated_at"))
    await store.update_thread(records[0].id, updated_at=99_999)
    assert await store.prune_history(max_age_seconds=-1) == 1
    assert await store.prune_history(max_age_seconds=-1) == 0
    with pytest.raises(InvalidCursor, match="expired"):
        await store.list_threads(ListQuery(sort_key="updated_at", cursor=updated_cursor))
    page, _ = await store.list_threads(ListQuery(cursor=created_cursor, limit=100))
    assert len(page) == 8  # created_at cursors need no history
    # paging that begins after the prune works as usual
    pages = await walk(store, ListQuery(limit=3, sort_key="updated_at"))
    assert sorted(flat(pages)) == sorted(r.id for r in records)


async def test_history_within_retention_is_kept(store: Store) -> None:
    records = await fill_with_ties(store, 10)
    _, cursor = await store.list_threads(ListQuery(limit=2, sort_key="updated_at"))
    await store.update_thread(records[0].id, updated_at=99_999)
    assert await store.prune_history() == 0  # 24 h retention
    rest = flat(await walk(store, ListQuery(limit=3, sort_key="updated_at", cursor=cursor)))
    assert len(rest) == 8


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_writes_prune_history_past_the_retention(kind: str, db_path: pathlib.Path) -> None:
    async with contextlib.AsyncExitStack() as stack:
        if kind == "memory":
            store: Store = MemoryStore(history_retention_seconds=-1)
        else:
            store = await stack.enter_async_context(
                open_sqlite_store(db_path, history_retention_seconds=-1)
            )
        records = await fill_with_ties(store, 6)
        _, cursor = await store.list_threads(ListQuery(limit=2, sort_key="updated_at"))
        await store.update_thread(records[0].id, updated_at=99_999)  # pruned at once
        with pytest.raises(InvalidCursor, match="expired"):
            await store.list_threads(ListQuery(sort_key="updated_at", cursor=cursor))
        assert await store.prune_history() == 0
