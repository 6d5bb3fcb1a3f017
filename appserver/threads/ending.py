"""The end of a turn (PROTOCOL.md §6, §7.4, §8.6): settle its requests, complete what it
left open, store its final state, then announce it. Also the announcement of a turn's
stored input."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from appserver.threads import objects
from appserver.threads.history import completed_params, wire_item
from appserver.threads.loaded import ActiveTurn, LoadedThread
from appserver.threads.persist import StoreRetry

# Item types that have the `declined` status.
DECLINABLE = frozenset({"commandExecution", "fileChange"})

# Settles a turn's pending requests with no decision; returns the ids of their items.
SettleTurnRequests = Callable[[LoadedThread, ActiveTurn], set[str]]


async def finish_turn(
    thread: LoadedThread,
    turn: ActiveTurn,
    status: str,
    message: str | None,
    settle: SettleTurnRequests,
    retry: StoreRetry | None = None,
    *,
    summary_view: bool = True,
) -> tuple[str, int]:
    """End a turn: settle its pending requests, complete every started item, store the
    final state, then announce it (§6, §7.4, §8.6). Each write is retried until it is
    stored; a store that fails for longer than the retry policy allows makes the turn
    end failed with the store's reason. `summary_view`: `turn/completed` of a completed
    turn carries its final agent message (`itemsView: "summary"`); without, as the
    reference ends a compaction or a user shell command's turn, no item (`notLoaded`).
    Returns the final status and when it ended (ms)."""
    retry = retry or StoreRetry()

    async def store(write: Callable[[], Awaitable[None]]) -> None:
        await retry.write(thread, turn, write, until_stored=True)

    async def store_item(item: dict[str, Any]) -> None:
        await store(lambda: thread.store.put_item(thread.id, turn.id, item))

    try:
        waiting = settle(thread, turn)  # serverRequest/resolved for each, before item/completed
        for item_id, item in list(turn.unstored.items()):
            if item_id not in turn.items:  # the turn's input, never announced yet
                await store_item(item)
                del turn.unstored[item_id]
                announce_user_item(thread, turn, item)
        for item_id in list(turn.items):
            if item_id in turn.completed:
                continue
            item = turn.unstored.get(item_id) or cut_off(turn, item_id, waiting)
            at_ms = item["completedAtMs"]
            await store_item(item)
            turn.unstored.pop(item_id, None)
            item = turn.items[item_id] = wire_item(item)
            turn.completed.add(item_id)
            thread.publish(
                "item/completed",
                completed_params({"threadId": thread.id, "turnId": turn.id}, item, at_ms),
            )
        if turn.store_failure is not None:
            status, message = "failed", turn.store_failure
        completed_ms = objects.now_ms()
        ts = completed_ms // 1000
        error: dict[str, Any] | None = None

        async def finish() -> None:
            # The final state as it stands when this try is made: a store that fails
            # past the retry policy turns it failed (§8.6).
            nonlocal status, message, error
            if turn.store_failure is not None:
                status, message = "failed", turn.store_failure
            error = objects.turn_error(message or "") if status == "failed" else None
            await thread.store.finish_turn(
                thread.id,
                turn.id,
                status=status,  # type: ignore[arg-type]
                error=error,
                updated_at=ts,
                completed_at_ms=completed_ms,
            )

        await store(finish)
        if error is not None:
            thread.publish(
                "error",
                {"error": error, "willRetry": False, "threadId": thread.id, "turnId": turn.id},
            )
        thread.record.updated_at = ts
        thread.turn = None
        thread.last_failed = status == "failed"
        thread.finished_turns += 1
        summary = objects.turn_summary(status, [turn.items[i] for i in turn.items])
        view = "summary" if status == "completed" and summary_view else "notLoaded"
        final = objects.turn_object(
            turn.id,
            status,
            error,
            summary if summary_view else [],
            items_view=view,
            started_at_ms=turn.started_at_ms,
            completed_at_ms=completed_ms,
        )
        thread.publish("turn/completed", {"threadId": thread.id, "turn": final})
        thread.refresh_status()
        return status, completed_ms
    finally:
        thread.turn = None if thread.turn is turn else thread.turn
        turn.done.set()


def announce_user_item(thread: LoadedThread, turn: ActiveTurn, user_item: dict[str, Any]) -> None:
    """The (stored) input of the turn: its item/started and item/completed."""
    turn.items[user_item["id"]] = user_item
    turn.completed.add(user_item["id"])
    params = {"threadId": thread.id, "turnId": turn.id}
    at_ms = user_item["startedAtMs"]
    thread.publish(
        "item/started",
        {**params, "item": {**user_item, "completedAtMs": None}, "startedAtMs": at_ms},
    )
    thread.publish("item/completed", completed_params(params, user_item, at_ms))


def cut_off(turn: ActiveTurn, item_id: str, waiting: set[str]) -> dict[str, Any]:
    """A started item the agent did not complete, as the end of the turn completes it."""
    item = turn.live_item(item_id)
    if item.get("status") == "inProgress":
        # A command or write that was waiting for approval ends declined (§7.4);
        # one that was cut off while running, or an item without that status (a
        # dynamic tool call), ends failed.
        declinable = item_id in waiting and item.get("type") in DECLINABLE
        item["status"] = "declined" if declinable else "failed"
    return objects.completed_item(item, item.get("startedAtMs"), objects.now_ms())
