"""PostgresStore specifics on a real PostgreSQL (pg_support): versioned migrations safe
under concurrent startups, application_name, a killed connection replaced by the pool,
open errors, and the `appserver --store` command line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import trio
from pg_support import PgCluster
from store.helpers import make_thread

from appserver.store import ListQuery, StoreOpenError
from appserver.store._pg_schema import SCHEMA_VERSION
from appserver.store.postgres import open_postgres_store


async def test_concurrent_first_opens_migrate_once(pg_url: str, pg_cluster: PgCluster) -> None:
    opened: list[int] = []

    async def open_one(n: int) -> None:
        async with open_postgres_store(pg_url, node_id=f"m{n}") as store:
            await store.create_thread(make_thread(n))
            opened.append(n)

    async with trio.open_nursery() as nursery:
        for n in range(4):
            nursery.start_soon(open_one, n)
    assert sorted(opened) == [0, 1, 2, 3]
    database = pg_url.rsplit("/", 1)[1]
    rows = pg_cluster.psql("SELECT version FROM schema_version ORDER BY version", database)
    assert rows.split() == [str(v) for v in range(1, SCHEMA_VERSION + 1)]
    async with open_postgres_store(pg_url) as store:  # reopening: nothing to do
        threads, _ = await store.list_threads(ListQuery(limit=10))
        assert len(threads) == 4


async def test_connections_carry_the_node_name_and_are_replaced(
    pg_url: str, pg_cluster: PgCluster
) -> None:
    async with open_postgres_store(pg_url, node_id="node-a", pool_min=2, pool_max=2) as store:
        await store.create_thread(make_thread(1))
        assert await trio.to_thread.run_sync(pg_cluster.terminate, "appserver:node-a") == 2
        assert await store.get_thread(make_thread(1).id) == make_thread(1)
        await store.create_thread(make_thread(2))
        names = pg_cluster.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'appserver:node-a'"
        )
        assert int(names) >= 1


async def test_newer_schema_and_unreachable_servers_are_refused(
    pg_url: str, pg_cluster: PgCluster
) -> None:
    async with open_postgres_store(pg_url):
        pass
    database = pg_url.rsplit("/", 1)[1]
    pg_cluster.psql("INSERT INTO schema_version (version, applied_by) VALUES (99, 'x')", database)
    with pytest.raises(StoreOpenError, match="newer"):
        async with open_postgres_store(pg_url):
            pass
    with pytest.raises(StoreOpenError, match=r"127\.0\.0\.1:1/nowhere"):
        async with open_postgres_store("postgresql://u:secret@127.0.0.1:1/nowhere"):
            pass


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--store", "postgresql://x@127.0.0.1:1/db", "--in-memory"], {}, "exclude each other"),
        (["--store", "mysql://x"], {}, "expected a postgresql:// URL"),
        ([], {"APPSERVER_DATABASE_URL": "postgresql://u:pw@127.0.0.1:1/db"}, "unusable store"),
    ],
)
def test_store_flag_errors_are_one_line(
    args: list[str], env: dict[str, str], message: str, tmp_path: object
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "appserver", "--data-dir", f"{tmp_path}/d", *args]
        if "--in-memory" not in args
        else [sys.executable, "-m", "appserver", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert "pw@" not in lines[0] and "Traceback" not in done.stderr
