"""The ThreadStore protocol and the records it stores.

Items and turn errors are kept in their wire form (plain JSON-able dicts, exactly as the
protocol sends them), so the store never needs to know item shapes.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import attrs

TurnStatus = Literal["inProgress", "completed", "interrupted", "failed"]
SortKey = Literal["created_at", "updated_at"]


class StoreError(Exception):
    """Root of store errors."""


class InvalidCursor(StoreError):
    """A thread/list cursor that this store did not issue (or that is malformed)."""


class ThreadNotStored(StoreError):
    """An update named a thread id the store does not hold."""


@attrs.define(kw_only=True)
class ThreadRecord:
    id: str
    preview: str = ""
    name: str | None = None
    model_provider: str
    model: str
    cwd: str
    created_at: int
    updated_at: int
    archived: bool = False
    # approvalPolicy, sandbox, baseInstructions, developerInstructions, config, ... (JSON)
    settings: dict[str, Any] = attrs.Factory(dict)


@attrs.define(kw_only=True)
class TurnRecord:
    id: str
    thread_id: str
    status: TurnStatus
    error: dict[str, Any] | None = None
    items: list[dict[str, Any]] = attrs.Factory(list)


@attrs.frozen(kw_only=True)
class ListQuery:
    limit: int = 25
    cursor: str | None = None
    sort_key: SortKey = "created_at"
    archived: bool = False
    cwd: str | None = None
    search_term: str | None = None
    model_providers: tuple[str, ...] = ()


_UNSET: Any = object()


class ThreadStore(Protocol):
    async def create_thread(self, record: ThreadRecord) -> None: ...

    async def get_thread(self, thread_id: str) -> ThreadRecord | None: ...

    async def update_thread(
        self,
        thread_id: str,
        *,
        name: str | None = _UNSET,
        preview: str = _UNSET,
        updated_at: int = _UNSET,
        archived: bool = _UNSET,
        settings: dict[str, Any] = _UNSET,
        cwd: str = _UNSET,
        model: str = _UNSET,
        model_provider: str = _UNSET,
    ) -> None: ...

    async def list_threads(self, query: ListQuery) -> tuple[list[ThreadRecord], str | None]: ...

    async def start_turn(
        self, thread_id: str, turn_id: str, *, updated_at: int, preview: str | None = None
    ) -> None: ...

    async def put_item(self, thread_id: str, turn_id: str, item: dict[str, Any]) -> None: ...

    async def finish_turn(
        self,
        thread_id: str,
        turn_id: str,
        *,
        status: TurnStatus,
        error: dict[str, Any] | None,
        updated_at: int,
    ) -> None: ...

    async def get_turns(self, thread_id: str) -> list[TurnRecord]: ...

    async def aclose(self) -> None: ...
