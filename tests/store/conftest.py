from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import attrs
import pytest
import trio
from pg_support import PgCluster

from appserver.store import MemoryStore, SqliteStore, open_sqlite_store
from appserver.store.postgres import PostgresStore, open_postgres_store

#: The stores the contract suite runs against (PostgreSQL: a real server, pg_support).
STORE_KINDS = ["memory", "sqlite", "postgres"]


@pytest.fixture
def db_path(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "appserver.sqlite3"


@attrs.define
class ContractDatabase:
    """One database for the session's postgres contract tests, migrated once; before each
    test `reset` puts it back exactly as migrated (every table emptied, identities
    restarted, the rows the migrations wrote restored from a snapshot schema) instead of
    creating and migrating a new database per test. (Migrating a new database is tested
    in tests/test_postgres_store.py.)"""

    url: str = ""
    reset: str = ""


SNAPSHOT = "contract_snapshot"


@pytest.fixture(scope="session")
def pg_contract_database() -> ContractDatabase:
    return ContractDatabase()


async def _fresh_postgres_url(cluster: PgCluster, db: ContractDatabase) -> str:
    if not db.url:
        url = await trio.to_thread.run_sync(cluster.create_database)
        async with open_postgres_store(url, node_id="contract-template", pool_max=1):
            pass
        name = url.rsplit("/", 1)[1]
        tables = (
            await trio.to_thread.run_sync(
                cluster.psql,
                "SELECT string_agg(quote_ident(tablename), ',' ORDER BY tablename) "
                "FROM pg_tables WHERE schemaname = 'public'",
                name,
            )
        ).split(",")
        copies = " ".join(
            f"CREATE TABLE {SNAPSHOT}.{t} AS SELECT * FROM public.{t};" for t in tables
        )
        await trio.to_thread.run_sync(cluster.psql, f"CREATE SCHEMA {SNAPSHOT}; {copies}", name)
        seeded = [
            t
            for t in tables
            if await trio.to_thread.run_sync(
                cluster.psql, f"SELECT count(*) FROM {SNAPSHOT}.{t}", name
            )
            != "0"
        ]
        restore = " ".join(
            f"INSERT INTO public.{t} OVERRIDING SYSTEM VALUE SELECT * FROM {SNAPSHOT}.{t};"
            for t in seeded
        )
        db.reset = (
            f"BEGIN; TRUNCATE {', '.join(f'public.{t}' for t in tables)} RESTART IDENTITY "
            f"CASCADE; {restore} COMMIT;"
        )
        db.url = url
    name = db.url.rsplit("/", 1)[1]
    await trio.to_thread.run_sync(cluster.psql, db.reset, name)
    return db.url


@pytest.fixture(params=STORE_KINDS)
async def store(
    request: pytest.FixtureRequest, db_path: pathlib.Path
) -> AsyncIterator[MemoryStore | SqliteStore | PostgresStore]:
    if request.param == "memory":
        memory = MemoryStore()
        yield memory
        await memory.aclose()
    elif request.param == "sqlite":
        async with open_sqlite_store(db_path) as sqlite:
            yield sqlite
    else:
        # One database, reset to just migrated before each test (ContractDatabase).
        cluster: PgCluster = request.getfixturevalue("pg_cluster")  # starts it lazily
        url = await _fresh_postgres_url(cluster, request.getfixturevalue("pg_contract_database"))
        async with open_postgres_store(url, node_id="contract", pool_max=4) as postgres:
            yield postgres
