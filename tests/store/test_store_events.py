"""ThreadStore contract of the numbered event log (PROTOCOL.md §13; store/base.py
"event log" block): the seq mark and the bounded log, for every store."""

from __future__ import annotations

import pathlib

import pytest

from appserver.store import MemoryStore, SqliteStore, open_sqlite_store
from appserver.store.base import EventSeqMark, LoggedEvent, StoreError, ThreadStore
from appserver.store.postgres import PostgresStore

from .helpers import make_thread

Store = MemoryStore | SqliteStore | PostgresStore


@pytest.fixture(autouse=True)
def _store_has_the_event_log(request: pytest.FixtureRequest) -> None:
    """A store still being written (the PostgreSQL one) may not have the methods yet."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("store") == "postgres":
        from appserver.store import postgres

        if not hasattr(postgres.PostgresStore, "append_events"):
            pytest.skip("PostgresStore has no event log methods yet")


def events(*seqs: int, size: int = 10) -> list[LoggedEvent]:
    return [LoggedEvent(seq=s, text=f"{s:0{size}d}") for s in seqs]


async def test_mark_defaults_then_round_trips(store: Store) -> None:
    assert await store.get_event_mark("t1") == EventSeqMark(reserved=0, clean=True)
    await store.put_event_mark("t1", EventSeqMark(reserved=1024, clean=False))
    assert await store.get_event_mark("t1") == EventSeqMark(reserved=1024, clean=False)
    await store.put_event_mark("t1", EventSeqMark(reserved=17, clean=True))
    assert await store.get_event_mark("t1") == EventSeqMark(reserved=17, clean=True)
    assert await store.get_event_mark("t2") == EventSeqMark()


async def test_append_and_read_after(store: Store) -> None:
    await store.append_events("t1", events(1, 2, 3), max_events=100, max_bytes=10_000)
    await store.append_events("t1", events(4, 5), max_events=100, max_bytes=10_000)
    await store.append_events("t2", events(1), max_events=100, max_bytes=10_000)
    assert await store.read_events("t1", 0) == events(1, 2, 3, 4, 5)
    assert await store.read_events("t1", 3) == events(4, 5)
    assert await store.read_events("t1", 5) == []
    assert await store.read_events("t2", 0) == events(1)
    assert await store.read_events("unknown", 0) == []


async def test_holes_are_kept_as_holes(store: Store) -> None:
    await store.append_events("t1", events(1, 2, 9, 10), max_events=100, max_bytes=10_000)
    assert await store.read_events("t1", 1) == events(2, 9, 10)
    assert await store.read_events("t1", 5) == events(9, 10)


async def test_trimmed_to_the_most_recent_by_count_and_by_bytes(store: Store) -> None:
    await store.append_events("t1", events(*range(1, 11)), max_events=4, max_bytes=10_000)
    assert await store.read_events("t1", 0) == events(7, 8, 9, 10)
    # 10 bytes each: at most 25 bytes keeps two.
    await store.append_events("t1", events(11), max_events=4, max_bytes=25)
    assert await store.read_events("t1", 0) == events(10, 11)
    # An event alone over the byte bound is not kept.
    await store.append_events("t1", events(12, size=40), max_events=4, max_bytes=25)
    assert await store.read_events("t1", 0) == []


async def test_bytes_are_utf8_bytes(store: Store) -> None:
    wide = [LoggedEvent(seq=1, text="é" * 10), LoggedEvent(seq=2, text="é" * 10)]
    await store.append_events("t1", wide, max_events=10, max_bytes=39)  # 20 bytes each
    assert await store.read_events("t1", 0) == wide[1:]


async def test_seqs_must_grow(store: Store) -> None:
    await store.append_events("t1", events(1, 2), max_events=10, max_bytes=10_000)
    with pytest.raises((StoreError, ValueError)):
        await store.append_events("t1", events(2), max_events=10, max_bytes=10_000)
    assert await store.read_events("t1", 0) == events(1, 2)


async def test_delete_thread_forgets_its_log_and_mark(store: Store) -> None:
    record = make_thread(1)
    await store.create_thread(record)
    await store.put_event_mark(record.id, EventSeqMark(reserved=9, clean=True))
    await store.append_events(record.id, events(1, 2), max_events=10, max_bytes=10_000)
    assert await store.delete_thread(record.id)
    assert await store.read_events(record.id, 0) == []
    assert await store.get_event_mark(record.id) == EventSeqMark()


async def test_sqlite_log_and_mark_survive_reopening(db_path: pathlib.Path) -> None:
    async with open_sqlite_store(db_path) as first:
        store: ThreadStore = first
        await store.put_event_mark("t1", EventSeqMark(reserved=2048, clean=False))
        await store.append_events("t1", events(1, 2), max_events=10, max_bytes=10_000)
    async with open_sqlite_store(db_path) as second:
        assert await second.get_event_mark("t1") == EventSeqMark(reserved=2048, clean=False)
        assert await second.read_events("t1", 0) == events(1, 2)


async def test_many_batches_keep_exactly_the_bound(store: Store) -> None:
    seq = 0
    for _ in range(12):
        await store.append_events(
            "t1", events(*range(seq + 1, seq + 8)), max_events=20, max_bytes=10_000
        )
        seq += 7
    assert await store.read_events("t1", 0) == events(*range(seq - 19, seq + 1))
    # The byte bound, over batches: 10 bytes each, 95 bytes keep nine.
    for _ in range(3):
        await store.append_events(
            "t1", events(*range(seq + 1, seq + 5)), max_events=20, max_bytes=95
        )
        seq += 4
    assert await store.read_events("t1", 0) == events(*range(seq - 8, seq + 1))
