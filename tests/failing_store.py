"""Store-failure injection (PROTOCOL.md §8.6): a real store (an SQLite file) whose writes
fail when told to, with the very exception the SQLite store raises for a full disk or a
locked database (`StoreUnavailable`, made by `appserver.store.sqlite.store_error`).

- `FailingStore(inner, path)` wraps a real store. A write fails while `down` is set, when
  `fail_next` names it (after `pass_first` calls of it pass), or at random with
  probability `rate` (seeded `rng`). Mode "before" fails without writing (what SQLite
  does: the transaction rolls back); mode "after" (only for the idempotent writes:
  put_item, finish_turn, update_thread) writes and then fails, the worst case of a reply
  lost after the commit.
- It records what is really stored (`items`, `finished`, `threads`) the moment the inner
  write returns, so a client observer can check, on receipt of each `*/completed`, that
  it was stored before it was announced.
- `install(monkeypatch, ...)` makes every server opened in the test (`open_server` with a
  data dir) use a FailingStore around its real SQLite store.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import attrs
import pytest

from appserver.store.base import (
    EventSeqMark,
    ListQuery,
    LoggedEvent,
    ThreadPage,
    ThreadRecord,
    ThreadStore,
    TurnRecord,
)
from appserver.store.pages import LoadState, TurnPage
from appserver.store.sqlite import open_sqlite_store, store_error

Mode = Literal["before", "after"]
WRITES = ("create_thread", "update_thread", "start_turn", "put_item", "finish_turn")
IDEMPOTENT = frozenset({"update_thread", "put_item", "finish_turn"})
REASONS = ("database or disk is full", "database is locked", "disk I/O error")
_UNSET: Any = object()


@attrs.define(eq=False)
class FailingStore:
    inner: ThreadStore
    path: Path
    rate: float = 0.0
    after_share: float = 0.3  # of random failures of idempotent writes, how many are "after"
    rng: random.Random = attrs.Factory(lambda: random.Random(0))
    down: bool = False
    held: bool = False  # a second switch like `down`, for a test's own long outage
    reason: str = "database or disk is full"
    fail_next: dict[str, int] = attrs.Factory(dict)  # method -> how many next calls fail
    pass_first: dict[str, int] = attrs.Factory(dict)  # method -> calls that pass before those
    only: frozenset[str] = frozenset(WRITES)  # which writes random failures hit
    injected: int = 0
    # What is really stored, as the inner store acknowledged it.
    threads: set[str] = attrs.Factory(set)
    items: dict[tuple[str, str, str], dict[str, Any]] = attrs.Factory(dict)
    finished: dict[tuple[str, str], tuple[str, dict[str, Any] | None]] = attrs.Factory(dict)

    def error(self, reason: str | None = None) -> Exception:
        """The exception the SQLite store raises for `reason`."""
        return store_error(self.path, sqlite3.OperationalError(reason or self.reason))

    def _decide(self, method: str) -> Mode | None:
        if self.down or self.held:
            return "before"
        left = self.fail_next.get(method, 0)
        if left and self.pass_first.get(method, 0):
            self.pass_first[method] -= 1
        elif left:
            self.fail_next[method] = left - 1
            return "before"
        if method in self.only and self.rate and self.rng.random() < self.rate:
            if method in IDEMPOTENT and self.rng.random() < self.after_share:
                return "after"
            return "before"
        return None

    async def _write(self, method: str, write: Callable[[], Awaitable[None]]) -> bool:
        """Run `write` unless this call fails first; True if it was carried out."""
        mode = self._decide(method)
        if mode == "before":
            self.injected += 1
            random_failure = self.rate and not (self.down or self.held)
            raise self.error(self.rng.choice(REASONS) if random_failure else None)
        await write()
        if mode == "after":
            self.injected += 1
            raise self.error()
        return True

    # --- writes -------------------------------------------------------------------------

    async def create_thread(self, record: ThreadRecord) -> None:
        await self._write("create_thread", lambda: self.inner.create_thread(record))
        self.threads.add(record.id)

    async def update_thread(self, thread_id: str, **changes: Any) -> None:
        await self._write("update_thread", lambda: self.inner.update_thread(thread_id, **changes))

    async def start_turn(self, thread_id: str, turn_id: str, **kwargs: Any) -> None:
        await self._write("start_turn", lambda: self.inner.start_turn(thread_id, turn_id, **kwargs))

    async def put_item(self, thread_id: str, turn_id: str, item: dict[str, Any]) -> None:
        async def write() -> None:
            await self.inner.put_item(thread_id, turn_id, item)
            self.items[(thread_id, turn_id, item["id"])] = item

        await self._write("put_item", write)

    async def finish_turn(
        self,
        thread_id: str,
        turn_id: str,
        *,
        status: Any,
        error: dict[str, Any] | None,
        updated_at: int,
        completed_at_ms: int | None = None,
    ) -> None:
        async def write() -> None:
            await self.inner.finish_turn(
                thread_id,
                turn_id,
                status=status,
                error=error,
                updated_at=updated_at,
                completed_at_ms=completed_at_ms,
            )
            self.finished[(thread_id, turn_id)] = (status, error)

        await self._write("finish_turn", write)

    # --- reads (never fail here) --------------------------------------------------------

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        return await self.inner.get_thread(thread_id)

    async def list_page(self, query: ListQuery) -> ThreadPage:
        return await self.inner.list_page(query)

    async def list_threads(self, query: ListQuery) -> tuple[list[ThreadRecord], str | None]:
        return await self.inner.list_threads(query)

    async def get_turns(self, thread_id: str) -> list[TurnRecord]:
        return await self.inner.get_turns(thread_id)

    async def load_state(self, thread_id: str) -> LoadState | None:
        return await self.inner.load_state(thread_id)

    async def list_turn_summaries(self, thread_id: str, **kwargs: Any) -> TurnPage:
        return await self.inner.list_turn_summaries(thread_id, **kwargs)

    # (PROTOCOL.md §13): fail while down, like the other writes
    async def get_event_mark(self, thread_id: str) -> EventSeqMark:
        return await self.inner.get_event_mark(thread_id)

    async def put_event_mark(self, thread_id: str, mark: EventSeqMark) -> None:
        if self.down or self.held:
            raise self.error()
        await self.inner.put_event_mark(thread_id, mark)

    async def append_events(self, thread_id: str, events: list[LoggedEvent], **bounds: int) -> None:
        if self.down or self.held:
            raise self.error()
        await self.inner.append_events(thread_id, events, **bounds)

    async def read_events(self, thread_id: str, after_seq: int) -> list[LoggedEvent]:
        return await self.inner.read_events(thread_id, after_seq)

    async def aclose(self) -> None:
        await self.inner.aclose()

    @property
    def interrupted_at_open(self) -> int:
        return int(getattr(self.inner, "interrupted_at_open", 0))


def install(monkeypatch: pytest.MonkeyPatch, **settings: Any) -> list[FailingStore]:
    """Every SQLite store a server opens from here on is wrapped in a FailingStore built
    with `settings`; returns the list they are appended to, in opening order."""
    import appserver.server_store

    opened: list[FailingStore] = []

    @asynccontextmanager
    async def open_failing(path: Path, **kwargs: Any) -> AsyncIterator[FailingStore]:
        async with open_sqlite_store(path, **kwargs) as real:
            store = FailingStore(real, path, **settings)
            opened.append(store)
            yield store

    monkeypatch.setattr(appserver.server_store, "open_sqlite_store", open_failing)
    return opened
