"""The writes `turn/start` and `thread/resume` make before they answer (PROTOCOL.md §5.2,
§5.9, §8.6): settings are stored first and only then changed in memory, so a write that
fails changes nothing a later turn would use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import trio

from appserver.agents import Backends, get_backend
from appserver.agents.base import AgentBackend
from appserver.protocol import errors
from appserver.store.base import ThreadRecord
from appserver.store.errors import StoreUnavailable
from appserver.threads import objects
from appserver.threads.loaded import ActiveTurn, LoadedThread


async def store_settings(thread: LoadedThread, changes: dict[str, Any]) -> None:
    """Apply setting changes to a loaded thread: stored, then in memory."""
    draft = attrs.evolve(thread.record)
    update = objects.apply_settings(draft, changes)
    if update:
        await thread.store.update_thread(thread.id, **update)
        _commit(thread.record, draft, update)


def _commit(record: ThreadRecord, draft: ThreadRecord, update: dict[str, Any]) -> None:
    for field in update:
        setattr(record, field, getattr(draft, field))


@attrs.frozen
class StartedTurn:
    turn: ActiveTurn
    agent: AgentBackend
    user_item: dict[str, Any] | None  # None: a turn without input (threads/special.py)
    # Why storing the input failed (None: it is stored); the turn then stores it, with the
    # retries of every turn write, before it runs.
    input_failure: str | None
    # turn/completed carries the final agent message (turn.run_turn, ending.finish_turn).
    summary_view: bool = True


def _reserve(thread: LoadedThread) -> None:
    if thread.closing:
        raise errors.thread_closing(thread.id)
    if thread.turn is not None:
        raise errors.turn_already_active(thread.id, thread.turn.id)


def _backend(record: ThreadRecord, backends: Backends) -> AgentBackend:
    agent = get_backend(record.model_provider, backends)
    if agent is None:  # a thread of a plugin that is no longer installed (or failed to load)
        why = backends.unavailable.get(record.model_provider)
        raise errors.InvalidRequest(
            f"no agent backend for model provider {record.model_provider!r}"
            + (f": {why}" if why else "")
        )
    return agent


def _active_turn(
    record: ThreadRecord, user_input: list[dict[str, Any]], steerable: bool
) -> ActiveTurn:
    return ActiveTurn(
        id=objects.uuid7(),
        input=user_input,
        cwd=record.cwd,
        approval_policy=objects.effective(record, "approvalPolicy") or "on-request",
        sandbox=objects.effective(record, "sandbox") or "workspace-write",
        model=record.model,
        steerable=steerable,  # agents.base.Steering
    )


async def begin_special_turn(
    thread: LoadedThread,
    backends: Backends,
    make_agent: Callable[[AgentBackend], AgentBackend],
    *,
    summary_view: bool,
) -> StartedTurn:
    """Store a new turn of `thread` that has no input (a compaction, a user shell command,
    a review: threads/special.py); its "agent" is `make_agent(the thread's backend)`,
    which may refuse (raise) when the backend cannot do that work. Raises (and leaves no
    turn running) when the turn could not be stored."""
    _reserve(thread)
    record = thread.record
    agent = make_agent(_backend(record, backends))
    turn = _active_turn(record, [], steerable=False)
    thread.turn = turn  # reserved before any await
    ts = turn.started_at_ms // 1000
    try:
        await thread.store.start_turn(
            thread.id, turn.id, updated_at=ts, started_at_ms=turn.started_at_ms
        )
    except BaseException:
        thread.turn = None
        raise
    record.updated_at = ts
    return StartedTurn(turn, agent, None, None, summary_view)


async def begin_turn(
    thread: LoadedThread,
    user_input: list[dict[str, Any]],
    settings: dict[str, Any],
    client_id: str | None,
    backends: Backends,
) -> StartedTurn:
    """Store a new turn of `thread` (its settings, the turn, its input). Raises (and
    leaves no turn running) when the turn could not be stored; once it is, the turn
    exists: a failure to store its input is left to the turn's own retries."""
    _reserve(thread)
    record = thread.record
    draft = attrs.evolve(record)
    update = objects.apply_settings(draft, settings)  # they apply to this turn too
    agent = _backend(draft, backends)
    turn = _active_turn(draft, user_input, getattr(agent, "steerable", False))
    thread.turn = turn  # reserved before any await: a second turn/start is refused
    ts = turn.started_at_ms // 1000
    preview = objects.preview_of(user_input) if not record.preview else None
    try:
        if update:
            await thread.store.update_thread(thread.id, **update)
            _commit(record, draft, update)
        await thread.store.start_turn(
            thread.id, turn.id, updated_at=ts, preview=preview, started_at_ms=turn.started_at_ms
        )
    except BaseException:
        thread.turn = None
        raise
    record.updated_at = record.recency_at = ts
    if preview:
        record.preview = preview
    user_item = {
        "type": "userMessage",
        "id": objects.uuid7(),
        "clientId": client_id,
        "content": user_input,
        "startedAtMs": turn.started_at_ms,
        "completedAtMs": turn.started_at_ms,
    }
    # The turn is stored: it runs even if this request is cancelled from here on.
    with trio.CancelScope(shield=True):
        try:
            await thread.store.put_item(thread.id, turn.id, user_item)
        except StoreUnavailable as exc:
            return StartedTurn(turn, agent, user_item, input_failure=exc.reason)
    return StartedTurn(turn, agent, user_item, input_failure=None)
