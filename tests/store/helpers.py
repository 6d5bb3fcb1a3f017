"""Shared helpers for the store tests."""

from __future__ import annotations

from typing import Any

import attrs

from appserver.store import ListQuery, ThreadRecord, ThreadStore


def make_thread(n: int, **fields: Any) -> ThreadRecord:
    """Thread number ``n``; ids sort like ``n`` (fixed width)."""
    values: dict[str, Any] = {
        "id": f"0190{n:08d}",
        "preview": f"preview {n}",
        "model_provider": "builtin",
        "model": "script",
        "cwd": "/work",
        "created_at": 1_700_000_000 + n,
        "updated_at": 1_700_000_000 + n,
        "settings": {"approvalPolicy": "on-request", "n": n},
    }
    values.update(fields)
    return ThreadRecord(**values)


async def list_ids(store: ThreadStore, query: ListQuery) -> tuple[list[str], str | None]:
    page, cursor = await store.list_threads(query)
    return [t.id for t in page], cursor


async def walk(store: ThreadStore, query: ListQuery) -> list[list[str]]:
    """Every page of ``query``, as lists of ids."""
    pages: list[list[str]] = []
    cursor = query.cursor
    while True:
        ids, cursor = await list_ids(store, attrs.evolve(query, cursor=cursor))
        pages.append(ids)
        if cursor is None:
            return pages
        assert len(pages) < 10_000, "paging does not end"


def flat(pages: list[list[str]]) -> list[str]:
    return [thread_id for page in pages for thread_id in page]
