"""PostgresStore's hooks for the cluster (issue 16 step 3) on a real PostgreSQL: fencing
(``fence`` / ``unfence``, ``LeaseLost``), ``cluster=True`` at open, ``run_write`` /
``run_read`` / ``conninfo`` / ``application_name``, and migration 3 (the cluster's tables)
on a fresh, a v1 and a v2 database."""

from __future__ import annotations

import functools
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
import pytest
import trio

from appserver.store import LeaseLost, StoreError, ThreadNotStored
from appserver.store._pg_conn import Conn
from appserver.store._pg_rows import INSERT_SETTINGS_SQL, INSERT_THREAD_SQL, thread_params
from appserver.store._pg_schema import SCHEMA_VERSION, migrate
from appserver.store.base import EventSeqMark, LoggedEvent, TurnRecord
from appserver.store.errors import StoreUnavailable
from appserver.store.postgres import PostgresStore, open_postgres_store

from .helpers import make_thread

T1, T2, T3 = make_thread(1).id, make_thread(2).id, make_thread(3).id
NODE, EPOCH = "node-a", 7
ITEM = {"type": "agentMessage", "id": "i1", "text": "hello"}

Write = Callable[[PostgresStore], Awaitable[Any]]

#: One of every write that touches a thread (T1; T2 created, T3 imported), in an order
#: in which each succeeds on the state ``seeded`` leaves.
WRITES: list[tuple[str, Write]] = [
    ("create_thread", lambda s: s.create_thread(make_thread(2))),
    ("update_thread", lambda s: s.update_thread(T1, name="renamed", updated_at=1_800_000_000)),
    ("start_turn", lambda s: s.start_turn(T1, "u2", updated_at=1_800_000_001)),
    ("put_item", lambda s: s.put_item(T1, "u1", ITEM)),
    (
        "finish_turn",
        lambda s: s.finish_turn(T1, "u1", status="completed", error=None, updated_at=1_800_000_002),
    ),
    (
        "append_events",
        lambda s: s.append_events(
            T1, [LoggedEvent(seq=5, text="{}")], max_events=100, max_bytes=10_000
        ),
    ),
    ("put_event_mark", lambda s: s.put_event_mark(T1, EventSeqMark(reserved=1024, clean=False))),
    ("inject_items", lambda s: s.inject_items(T1, [ITEM])),
    ("revert_thread", lambda s: s.revert_thread(T1, "u2", updated_at=1_800_000_003)),
    (
        "import_thread",
        lambda s: s.import_thread(
            make_thread(3), [TurnRecord(id="v1", thread_id=T3, status="completed", items=[ITEM])]
        ),
    ),
    ("delete_thread", lambda s: s.delete_thread(T1)),
]


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresStore]:
    async with open_postgres_store(pg_url, node_id=NODE, pool_max=2, cluster=True) as opened:
        yield opened


async def seeded(store: PostgresStore) -> None:
    """T1 with a running turn u1 holding one item (written unfenced)."""
    await store.create_thread(make_thread(1))
    await store.start_turn(T1, "u1", updated_at=1_700_000_100)
    await store.put_item(T1, "u1", {"type": "userMessage", "id": "i0"})


async def set_leases(store: PostgresStore, node_id: str, epoch: int) -> None:
    def write(conn: Conn) -> None:
        for thread_id in (T1, T2, T3):
            conn.execute(
                "INSERT INTO thread_leases (thread_id, node_id, session, epoch, expires_at) "
                "VALUES (%s, %s, 's', %s, now() + interval '1 hour')",
                (thread_id, node_id, epoch),
            )

    await store.run_write(write)


async def dump(store: PostgresStore) -> dict[str, list[str]]:
    """Every row of every table but the leases and schema_version, as sorted JSON."""

    def read(conn: Conn) -> dict[str, list[str]]:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() ORDER BY table_name"
            )
            if name not in ("thread_leases", "schema_version")
        ]
        return {
            table: sorted(
                text for (text,) in conn.execute(f'SELECT row_to_json(x)::text FROM "{table}" x')
            )
            for table in tables
        }

    return await store.run_read(read)


def fence_all(store: PostgresStore, node_id: str = NODE, epoch: int = EPOCH) -> None:
    for thread_id in (T1, T2, T3):
        store.fence(thread_id, node_id, epoch)


async def test_fenced_writes_pass_with_the_matching_lease(store: PostgresStore) -> None:
    await seeded(store)
    await set_leases(store, NODE, EPOCH)
    fence_all(store)
    assert store.fenced(T1) == (NODE, EPOCH)
    before = await dump(store)
    for name, write in WRITES[:-1]:
        await write(store)  # none raises
        after = await dump(store)
        assert after != before, f"{name} stored nothing"
        before = after
    assert (await store.get_thread(T1)) is not None
    assert [t.id for t in await store.get_turns(T1)] == ["u1"]
    assert [t.id for t in await store.get_turns(T3)] == ["v1"]
    assert await store.delete_thread(T1)
    assert await store.get_thread(T1) is None
    # the lease rows are the cluster's: thread/delete leaves them
    leases = await store.run_read(
        lambda conn: conn.execute("SELECT count(*) FROM thread_leases").fetchone()
    )
    assert leases == (3,)


@pytest.mark.parametrize(
    ("holder", "message"),
    [
        (("node-a", 8), "held by node-a epoch 8"),
        (("node-b", 7), "held by node-b epoch 7"),
        (None, "held by nobody"),
    ],
    ids=["other-epoch", "other-node", "no-row"],
)
async def test_fenced_writes_without_the_lease_raise_and_change_nothing(
    store: PostgresStore, holder: tuple[str, int] | None, message: str
) -> None:
    await seeded(store)
    if holder is not None:
        await set_leases(store, *holder)
    fence_all(store)
    before = await dump(store)
    for name, write in WRITES:
        with pytest.raises(LeaseLost, match=f"^lease of thread .* lost: {message}$") as lost:
            await write(store)
        assert lost.value.thread_id in (T1, T2, T3), name
        assert lost.value.node_id == (None if holder is None else holder[0])
        assert await dump(store) == before, f"{name} changed the store"
    assert not isinstance(lost.value, StoreUnavailable)  # final: no retry policy takes it
    store.unfence(T1)
    store.unfence(T1)  # idempotent
    assert store.fenced(T1) is None
    await store.update_thread(T1, name="unfenced again")
    assert (await store.get_thread(T1)).name == "unfenced again"  # type: ignore[union-attr]


async def test_unfenced_writes_never_read_the_leases(store: PostgresStore) -> None:
    await store.run_write(lambda conn: conn.execute("DROP TABLE thread_leases"))
    await seeded(store)
    for _, write in WRITES:
        await write(store)  # no lease table, and every write goes through
    store.fence(T2, NODE, EPOCH)
    with pytest.raises(StoreError, match="thread_leases"):
        await store.update_thread(T2, name="fenced")  # the check would have shown


async def test_the_fence_holds_a_takeover_until_the_write_commits(
    store: PostgresStore, pg_url: str
) -> None:
    await seeded(store)
    await set_leases(store, NODE, EPOCH)
    store.fence(T1, NODE, EPOCH)
    inside, release = threading.Event(), threading.Event()

    def held_write(conn: Conn) -> None:
        conn.execute("UPDATE threads SET name = 'held' WHERE id = %s", (T1,))
        inside.set()
        release.wait(30)

    def take_over(lock_timeout: str) -> None:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"SET lock_timeout = '{lock_timeout}'")
            conn.execute(
                "UPDATE thread_leases SET node_id = 'node-b', epoch = epoch + 1 "
                "WHERE thread_id = %s",
                (T1,),
            )

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(store.run_write, held_write, thread_id=T1))
            try:
                await trio.to_thread.run_sync(inside.wait, 30)
                # only a lock can make it time out: the fenced write's FOR SHARE
                with pytest.raises(psycopg.errors.LockNotAvailable):
                    await trio.to_thread.run_sync(take_over, "200ms")
            finally:
                release.set()
        await trio.to_thread.run_sync(take_over, "0")  # once committed: no wait
    assert (await store.get_thread(T1)).name == "held"  # type: ignore[union-attr]
    with pytest.raises(LeaseLost, match="held by node-b epoch 8"):
        await store.update_thread(T1, name="too late")


async def test_cluster_open_leaves_running_turns_running(pg_url: str) -> None:
    async with open_postgres_store(pg_url) as store:
        await seeded(store)
    async with open_postgres_store(pg_url, cluster=True) as store:
        assert store.cluster and store.interrupted_at_open == 0
        state = await store.load_state(T1)
        assert state is not None and state.running_turn_ids == ["u1"]
    async with open_postgres_store(pg_url) as store:
        assert not store.cluster and store.interrupted_at_open == 1
        state = await store.load_state(T1)
        assert state is not None and state.running_turn_ids == []


async def test_run_write_run_read_conninfo_and_application_name(store: PostgresStore) -> None:
    assert store.application_name == f"appserver:{NODE}"

    def listen_name() -> str:
        with psycopg.connect(store.conninfo, autocommit=True) as conn:
            row = conn.execute("SHOW application_name").fetchone()
            assert row is not None
            return str(row[0])

    assert await trio.to_thread.run_sync(listen_name) == store.application_name

    def fails(conn: Conn) -> None:
        conn.execute("INSERT INTO cluster_nodes (node_id, session) VALUES ('n', 's')")
        raise ValueError("after the insert")

    with pytest.raises(ValueError, match="after the insert"):
        await store.run_write(fails)
    count = await store.run_read(
        lambda conn: conn.execute("SELECT count(*) FROM cluster_nodes").fetchone()
    )
    assert count == (0,)  # rolled back
    with pytest.raises(StoreError, match="read-only"):
        await store.run_read(
            lambda conn: conn.execute(
                "INSERT INTO cluster_nodes (node_id, session) VALUES ('n', 's')"
            )
        )
    with pytest.raises(ThreadNotStored):  # the store's errors come through as they are
        await store.run_write(lambda conn: store._updated_at(conn, "nope"))


# -- migration 3 --------------------------------------------------------------------

CLUSTER_COLUMNS = {
    "cluster_nodes": [
        ("node_id", "text", "NO", "C"),
        ("session", "text", "NO", None),
        ("heartbeat_at", "timestamp with time zone", "NO", None),
        ("started_at", "timestamp with time zone", "NO", None),
        ("urls", "jsonb", "NO", None),
    ],
    "thread_leases": [
        ("thread_id", "text", "NO", "C"),
        ("node_id", "text", "NO", "C"),
        ("session", "text", "NO", None),
        ("epoch", "bigint", "NO", None),
        ("expires_at", "timestamp with time zone", "NO", None),
    ],
    "cluster_calls": [
        ("id", "bigint", "NO", None),
        ("target_node", "text", "NO", "C"),
        ("from_node", "text", "NO", "C"),
        ("thread_id", "text", "YES", "C"),
        ("kind", "text", "NO", None),
        ("body", "jsonb", "NO", None),
        ("reply", "jsonb", "YES", None),
        ("created_at", "timestamp with time zone", "NO", None),
        ("replied_at", "timestamp with time zone", "YES", None),
    ],
}


async def check_cluster_schema(store: PostgresStore) -> None:
    def read(conn: Conn) -> tuple[dict[str, list[tuple[Any, ...]]], list[str], list[int]]:
        columns = {
            table: [
                tuple(row)
                for row in conn.execute(
                    "SELECT column_name, data_type, is_nullable, collation_name "
                    "FROM information_schema.columns WHERE table_schema = current_schema() "
                    "AND table_name = %s ORDER BY ordinal_position",
                    (table,),
                )
            ]
            for table in CLUSTER_COLUMNS
        }
        indexes = [
            definition.split(" ON ", 1)[1]
            for (definition,) in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename IN "
                "('thread_leases', 'cluster_calls') AND indexname NOT LIKE '%%pkey' "
                "ORDER BY indexname"
            )
        ]
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
        return columns, indexes, versions

    columns, indexes, versions = await store.run_read(read)
    assert columns == CLUSTER_COLUMNS
    assert indexes == [
        "public.cluster_calls USING btree (target_node, id) WHERE (reply IS NULL)",
        "public.thread_leases USING btree (node_id)",
    ]
    assert versions == list(range(1, SCHEMA_VERSION + 1)) and SCHEMA_VERSION == 3


async def test_migration_3_on_a_fresh_database(store: PostgresStore) -> None:
    await check_cluster_schema(store)


@pytest.mark.parametrize("old_version", [1, 2])
async def test_migration_3_on_an_older_database(pg_url: str, old_version: int) -> None:
    record = make_thread(1)

    def build_old() -> None:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            assert migrate(conn, "test", "old", upto=old_version) == 0
            with conn.transaction():
                conn.execute(INSERT_THREAD_SQL, thread_params(record))
                conn.execute(INSERT_SETTINGS_SQL, (record.id, '{"approvalPolicy": "never"}'))
            (version,) = conn.execute("SELECT max(version) FROM schema_version").fetchone() or ()
            assert version == old_version

    await trio.to_thread.run_sync(build_old)
    async with open_postgres_store(pg_url, node_id="new", cluster=True) as store:
        await check_cluster_schema(store)
        stored = await store.get_thread(record.id)
        assert stored is not None and stored.settings == {"approvalPolicy": "never"}
