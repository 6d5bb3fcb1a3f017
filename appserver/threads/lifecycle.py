"""Thread-level lifecycle operations that need the registry (thread/fork of a live thread,
thread/delete, thread/revert): handlers/lifecycle.py validates, these act.

- A fork copies its source's turns and items with their ids (PROTOCOL.md §4.5) into a new
  thread stored in one write; the source's running turn, if any, is copied as it stands
  (its items so far) as `interrupted`, while it keeps running on the source. The caller is
  subscribed to the fork only.
- A delete closes a loaded thread first as a close does (§8.4: running turn interrupted,
  pending requests settled, `thread/status/changed` notLoaded), without `thread/closed`
  (the caller broadcasts `thread/deleted`, as the reference), then removes every row.
- A revert of a loaded thread first interrupts its running turn (as the reference), then
  cuts the stored history before the given turn; subscribers stay subscribed.
"""

from __future__ import annotations

from typing import Any

import attrs

from appserver.protocol import errors
from appserver.store.base import RevertedHistory, ThreadRecord, ThreadStore, TurnRecord
from appserver.store.errors import TurnNotStored
from appserver.store.memory import MemoryStore
from appserver.threads import objects
from appserver.threads.loaded import ActiveTurn, LoadedThread
from appserver.threads.registry import Registry
from appserver.threads.subscriber import Subscriber

__all__ = ["ForkSource", "delete", "fork", "fork_source", "revert", "turn_not_found"]


def turn_not_found(turn_id: str) -> errors.InvalidRequest:
    return errors.InvalidRequest(f"turn not found: {turn_id}")


@attrs.frozen
class ForkSource:
    """The source of a fork: its record and history as they stand (a running turn as
    `interrupted`, with its items so far), and the id of that running turn."""

    record: ThreadRecord
    turns: list[TurnRecord]
    running_turn_id: str | None = None

    def through(self, last_turn_id: str | None) -> list[TurnRecord]:
        """The turns up to `last_turn_id` inclusive (all of them when None)."""
        if last_turn_id is None:
            return list(self.turns)
        if last_turn_id == self.running_turn_id:
            raise errors.InvalidRequest(
                f"lastTurnId '{last_turn_id}' identifies an in-progress turn"
            )
        for index, turn in enumerate(self.turns):
            if turn.id == last_turn_id:
                return self.turns[: index + 1]
        raise turn_not_found(last_turn_id)


def _cut_off_items(turn: ActiveTurn) -> list[dict[str, Any]]:
    """A running turn's items as a copy holds them: completed ones as they are, the others
    as they stand, an in-progress command or write ending `failed` (as a close leaves it)."""
    items = []
    for item_id in turn.items:
        item = turn.live_item(item_id)
        if item_id not in turn.completed and item.get("status") == "inProgress":
            item = {**item, "status": "failed"}
        items.append(item)
    return items


async def fork_source(registry: Registry, store: ThreadStore, thread_id: str) -> ForkSource:
    """The history a fork of `thread_id` copies: a loaded thread's own (its store and the
    running turn as it stands), else the store's."""
    thread = registry.get(thread_id)
    if thread is not None:
        while True:  # as Registry.snapshot_turns: never a turn both stale and gone
            version = thread.finished_turns
            stored = await thread.store.get_turns(thread.id)
            if thread.finished_turns == version:
                break
        record = attrs.evolve(thread.record, settings=dict(thread.record.settings))
        running = thread.turn
        turns = [t for t in stored if running is None or t.id != running.id]
        if running is None:
            return ForkSource(record, turns)
        copy = TurnRecord(
            id=running.id,
            thread_id=thread_id,
            status="interrupted",
            items=_cut_off_items(running),
            started_at_ms=running.started_at_ms,
        )
        return ForkSource(record, [*turns, copy], running.id)
    found = await store.get_thread(thread_id)
    if found is None:
        raise errors.thread_not_found(thread_id)
    if found.archived:
        raise errors.thread_archived(thread_id)
    stored = await store.get_turns(thread_id)
    for turn in stored:
        if turn.status == "inProgress":  # cut off by a crash: as loading reports it
            turn.status = "interrupted"
    return ForkSource(found, stored)


async def fork(
    registry: Registry,
    sub: Subscriber,
    record: ThreadRecord,
    turns: list[TurnRecord],
    *,
    ephemeral: bool,
) -> LoadedThread:
    """Store the fork (`record` holding `turns`), load it with its status, subscribe `sub`."""
    store: ThreadStore = MemoryStore() if ephemeral else registry.store
    copies = [attrs.evolve(turn, thread_id=record.id) for turn in turns]
    if not ephemeral:
        await registry.ownership.acquire(record.id, new=True)  # a cluster's lease
    await store.import_thread(record, copies)
    thread = LoadedThread(record, store, registry.broadcast, ephemeral=ephemeral)
    thread.last_failed = bool(turns) and turns[-1].status == "failed"
    thread.status_sent = thread.status()  # created with it: no status change (§5.1)
    registry.adopt(thread, sub)
    return thread


async def delete(registry: Registry, thread_id: str) -> None:
    """Close the thread if loaded (no `thread/closed`), then remove it from its store.
    While this runs, a resume of it gets threadClosing."""
    async with registry.archiving(thread_id):
        thread = registry.get(thread_id)
        if thread is None:
            if not await registry.store.delete_thread(thread_id):
                raise errors.thread_not_found(thread_id)
            raced = registry.get(thread_id)  # a load that was already reading it
            if raced is not None:
                await registry.close(raced, archive=True, why="delete")
            return
        await registry.close(thread, archive=True, why="delete")  # archive: no thread/closed
        await thread.store.delete_thread(thread_id)


async def revert(registry: Registry, thread: LoadedThread, before_turn_id: str) -> RevertedHistory:
    """Cut the thread's history before `before_turn_id` (a running turn is interrupted
    first, as the reference does; an unknown turn id changes nothing)."""
    running = thread.turn
    if running is not None:
        if running.id != before_turn_id:
            stored = await thread.store.get_turns(thread.id)
            if all(turn.id != before_turn_id for turn in stored):
                raise turn_not_found(before_turn_id)
        await registry.interrupt(thread, running.id)
    if thread.closing or registry.get(thread.id) is not thread:
        raise errors.thread_closing(thread.id)
    if thread.turn is not None:  # a turn/start got in while the turn stopped
        raise errors.turn_already_active(thread.id, thread.turn.id)
    # No checkpoint from here to the write's turn at the store's writer: a turn/start
    # that comes now stores its turn after the cut, on top of the kept prefix.
    ts = objects.now()
    try:
        reverted = await thread.store.revert_thread(thread.id, before_turn_id, updated_at=ts)
    except TurnNotStored:
        raise turn_not_found(before_turn_id) from None
    thread.record.updated_at = ts
    thread.finished_turns += 1  # snapshots taken meanwhile are read again
    state = await thread.store.load_state(thread.id)
    thread.last_failed = state is not None and state.last_turn_status == "failed"
    thread.refresh_status()
    return reverted
