from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest

from appserver.store import MemoryStore, SqliteStore, open_sqlite_store


@pytest.fixture
def db_path(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "appserver.sqlite3"


@pytest.fixture(params=["memory", "sqlite"])
async def store(
    request: pytest.FixtureRequest, db_path: pathlib.Path
) -> AsyncIterator[MemoryStore | SqliteStore]:
    if request.param == "memory":
        memory = MemoryStore()
        yield memory
        await memory.aclose()
    else:
        async with open_sqlite_store(db_path) as sqlite:
            yield sqlite
