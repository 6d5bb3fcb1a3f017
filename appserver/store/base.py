"""The ThreadStore protocol and the records it stores.

Items and turn errors are kept in their wire form (plain JSON-able dicts, exactly as the
protocol sends them), so the store never needs to know item shapes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol

import attrs

if TYPE_CHECKING:
    from appserver.store.pages import ItemPage, LoadState, TurnPage

TurnStatus = Literal["inProgress", "completed", "interrupted", "failed"]
SortKey = Literal["created_at", "updated_at", "recency_at"]
SortDirection = Literal["asc", "desc"]


class StoreError(Exception):
    """Root of store errors."""


class InvalidCursor(StoreError):
    """A thread/list cursor that this store did not issue (or that is malformed)."""


class UnknownItemAnchor(StoreError):
    """A thread/items/list item anchor that names no item of the requested turn."""


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
    # When the thread last saw user activity (its creation, then each turn start): the
    # ``recency_at`` sort key (Codex's Thread.recencyAt). Defaults to ``created_at``.
    recency_at: int = attrs.field()
    archived: bool = False
    # approvalPolicy, sandbox, baseInstructions, developerInstructions, config, ... (JSON)
    settings: dict[str, Any] = attrs.Factory(dict)

    @recency_at.default
    def _recency_at_default(self) -> int:
        return self.created_at


@attrs.define(kw_only=True)
class TurnRecord:
    id: str
    thread_id: str
    status: TurnStatus
    error: dict[str, Any] | None = None
    items: list[dict[str, Any]] = attrs.Factory(list)
    # Unix milliseconds; None when not recorded (turns stored before schema 2, or cut
    # off by a crash).
    started_at_ms: int | None = None
    completed_at_ms: int | None = None


@attrs.frozen(kw_only=True)
class ListQuery:
    """One thread/list page request. Every filter narrows the listing:

    - ``cwd``: one path or several (exact match; an empty tuple matches nothing);
    - ``included_ids``: None = unrestricted, else only these ids (``()`` matches nothing);
    - ``excluded_ids``: never these ids;
    - ``model_providers``: ``()`` = every provider;
    - ``search_term``: case-insensitive substring of the preview or the name.
    """

    limit: int = 25
    cursor: str | None = None
    sort_key: SortKey = "created_at"
    direction: SortDirection = "desc"
    archived: bool = False
    cwd: str | tuple[str, ...] | None = None
    search_term: str | None = None
    model_providers: tuple[str, ...] = ()
    included_ids: tuple[str, ...] | None = None
    excluded_ids: tuple[str, ...] = ()

    def cwds(self) -> tuple[str, ...] | None:
        return (self.cwd,) if isinstance(self.cwd, str) else self.cwd


@attrs.frozen(kw_only=True)
class ThreadPage:
    """A page of thread/list: ``next_cursor`` continues after the last thread in the
    same direction (None at the end); ``backwards_cursor`` (None for an empty page),
    used with the opposite direction, lists from the page's first thread backwards,
    including every thread that shares its sort key value."""

    threads: list[ThreadRecord]
    next_cursor: str | None
    backwards_cursor: str | None


@attrs.frozen(kw_only=True)
class InjectedItem:
    """A raw Responses API item that thread/inject_items appended to the model-visible
    history: ``after_turn_id`` is the turn that was the thread's last when it came (None:
    it came before any turn)."""

    after_turn_id: str | None
    item: Any


@attrs.frozen(kw_only=True)
class RevertedHistory:
    """What thread/revert left: inclusive backwards cursors (``store/pages.py``) at the last
    remaining turn and the last remaining item (None when there is none)."""

    turns_backwards_cursor: str | None
    items_backwards_cursor: str | None


@attrs.frozen(kw_only=True)
class LoggedEvent:
    """One numbered thread event (PROTOCOL.md §13): ``seq`` (per thread, from 1) and
    ``text``, the JSON-RPC message exactly as an opted-in connection receives it (a
    notification or a server request, with its top-level ``seq``)."""

    seq: int
    text: str


@attrs.frozen(kw_only=True)
class EventSeqMark:
    """A thread's sequence high-water mark: every seq <= ``reserved`` may have been handed
    out. ``clean``: the last server holding the thread released it (closed it cleanly), so
    ``reserved`` is exactly its last seq used and the log holds everything it flushed; not
    clean (a crash), seqs up to ``reserved`` may be lost from the log."""

    reserved: int = 0
    clean: bool = True


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

    async def list_page(self, query: ListQuery) -> ThreadPage: ...

    async def list_threads(self, query: ListQuery) -> tuple[list[ThreadRecord], str | None]:
        """``list_page`` without the backwards cursor."""
        ...

    async def start_turn(
        self,
        thread_id: str,
        turn_id: str,
        *,
        updated_at: int,
        preview: str | None = None,
        started_at_ms: int | None = None,
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
        completed_at_ms: int | None = None,
    ) -> None: ...

    async def get_turns(self, thread_id: str) -> list[TurnRecord]: ...

    async def list_turns(
        self,
        thread_id: str,
        *,
        limit: int,
        cursor: str | None = None,
        direction: SortDirection = "desc",
        with_items: bool = True,
    ) -> TurnPage:
        """A keyset page of the thread's turns in insertion order (``desc``: newest
        first), with their items unless ``with_items`` is false (``store/pages.py``
        describes the cursors). InvalidCursor for a cursor this store did not issue for
        this thread's turns. An unknown thread has no turns."""
        ...

    async def list_turn_summaries(
        self,
        thread_id: str,
        *,
        limit: int,
        cursor: str | None = None,
        direction: SortDirection = "desc",
    ) -> TurnPage:
        """``list_turns`` whose turns carry only what the ``summary`` view shows
        (``pages.summary_items``: user messages, a completed turn's final agent
        message), read without the turns' other items."""
        ...

    async def load_state(self, thread_id: str) -> LoadState | None:
        """The record, the ids of turns stored ``inProgress`` and the last turn's status
        (``pages.LoadState``), without reading items; None for an unknown thread."""
        ...

    async def list_items(
        self,
        thread_id: str,
        *,
        limit: int,
        cursor: str | None = None,
        direction: SortDirection = "asc",
        turn_id: str | None = None,
        after_item: str | None = None,
    ) -> ItemPage:
        """A keyset page of the thread's items (of one turn if ``turn_id``) in insertion
        order. ``after_item`` (with ``turn_id``, instead of ``cursor``) starts after
        that item of the turn, exclusive; UnknownItemAnchor if the turn has no such
        item. An unknown turn or thread has no items."""
        ...

    # --- thread lifecycle (thread/fork, /delete, /revert, /inject_items) ---
    async def import_thread(self, record: ThreadRecord, turns: list[TurnRecord]) -> None:
        """Store a new thread holding ``turns`` with their items (ids, statuses and times
        as given, in that order), in one write: a fork. AlreadyStored if the id is taken."""
        ...

    async def delete_thread(self, thread_id: str) -> bool:
        """Remove the thread and everything stored about it (turns, items, injected items,
        settings, sort key history); False if it was not stored."""
        ...

    async def revert_thread(
        self, thread_id: str, before_turn_id: str, *, updated_at: int
    ) -> RevertedHistory:
        """Drop ``before_turn_id`` and every later turn (their items, the items injected
        after them); set updated_at. ThreadNotStored / TurnNotStored for unknown ids."""
        ...

    async def inject_items(self, thread_id: str, items: list[Any]) -> None:
        """Append raw model items after the thread's current last turn (ThreadNotStored)."""
        ...

    async def get_injected_items(self, thread_id: str) -> list[InjectedItem]:
        """The injected items in the order they came (an unknown thread has none)."""
        ...

    # --- end of thread lifecycle ---

    async def get_event_mark(self, thread_id: str) -> EventSeqMark:
        """The thread's seq high-water mark; ``EventSeqMark()`` (0, clean) when none was
        ever put (a new or unknown thread)."""
        ...

    async def put_event_mark(self, thread_id: str, mark: EventSeqMark) -> None:
        """Durably store the mark (it is committed when this returns: the server reserves
        seq blocks with it before handing them out). A thread that is not stored still
        gets its mark (no error); ``delete_thread`` removes it."""
        ...

    async def append_events(
        self, thread_id: str, events: list[LoggedEvent], *, max_events: int, max_bytes: int
    ) -> None:
        """Append ``events`` (ascending seqs, each greater than any stored for the thread)
        to the thread's log in one write, then trim it from the oldest end so that at most
        ``max_events`` remain and their texts total at most ``max_bytes`` UTF-8 bytes
        (the newest event may be dropped too if it alone exceeds ``max_bytes``)."""
        ...

    async def read_events(self, thread_id: str, after_seq: int) -> list[LoggedEvent]:
        """The logged events of the thread with ``seq > after_seq``, ascending (an unknown
        thread has none). The caller checks the result starts at ``after_seq + 1``."""
        ...

    async def aclose(self) -> None: ...
