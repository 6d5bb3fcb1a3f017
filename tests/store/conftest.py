from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest

from appserver.store import MemoryStore, SqliteStore, open_sqlite_store
from appserver.store.postgres import PostgresStore, open_postgres_store

#: The stores the contract suite runs against (PostgreSQL: a real server, pg_support).
STORE_KINDS = ["memory", "sqlite", "postgres"]


@pytest.fixture
def db_path(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "appserver.sqlite3"


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
        url: str = request.getfixturevalue("pg_url")  # starts PostgreSQL lazily
        async with open_postgres_store(url, node_id="contract", pool_max=4) as postgres:
            yield postgres
