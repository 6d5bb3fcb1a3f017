"""Running one turn: the TurnContext the agent emits through, and the turn's ending.

The turn task belongs to the registry's nursery; its cancel scope lives on the ActiveTurn
so `turn/interrupt` cancels exactly that turn.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio

from appserver.agents.base import (
    AgentBackend,
    ApprovalDecision,
    ApprovalKind,
    TurnCancelled,
    TurnFailed,
)
from appserver.store.base import TurnRecord
from appserver.store.errors import StoreUnavailable
from appserver.threads import objects
from appserver.threads.loaded import ActiveTurn, LoadedThread
from appserver.threads.persist import StoreRetry

log = logging.getLogger("appserver.turn")

AskApproval = Callable[[LoadedThread, ActiveTurn, ApprovalKind, dict[str, Any]], Awaitable[str]]
# Settles a turn's pending requests with no decision; returns the ids of their items.
SettleTurnRequests = Callable[[LoadedThread, ActiveTurn], set[str]]


class TurnRunner:
    """The TurnContext of one turn (see appserver.agents.base)."""

    def __init__(
        self,
        thread: LoadedThread,
        turn: ActiveTurn,
        ask: AskApproval,
        retry: StoreRetry | None = None,
        settle: SettleTurnRequests | None = None,
    ) -> None:
        self._thread = thread
        self._turn = turn
        self._ask = ask
        self._retry = retry or StoreRetry()
        self._settle = settle

    @property
    def thread_id(self) -> str:
        return self._thread.id

    @property
    def turn_id(self) -> str:
        return self._turn.id

    @property
    def cwd(self) -> str:
        return self._turn.cwd

    @property
    def approval_policy(self) -> str:
        return self._turn.approval_policy

    @property
    def sandbox(self) -> str:
        return self._turn.sandbox

    @property
    def model(self) -> str:
        return self._turn.model

    @property
    def session_approvals(self) -> set[str]:
        return self._thread.session_approvals

    def new_item_id(self) -> str:
        return objects.uuid7()

    def _params(self, **extra: Any) -> dict[str, Any]:
        return {"threadId": self._thread.id, "turnId": self._turn.id, **extra}

    def _check_open(self, item_id: str) -> None:
        if item_id not in self._turn.items or item_id in self._turn.completed:
            raise RuntimeError(f"item {item_id} is not in progress")

    async def item_started(self, item: dict[str, Any]) -> None:
        item_id = item["id"]
        if item_id in self._turn.items:
            raise RuntimeError(f"item {item_id} started twice")
        at_ms = objects.now_ms()
        item = objects.started_item(item, at_ms)
        self._turn.items[item_id] = item
        self._thread.publish("item/started", self._params(item=item, startedAtMs=at_ms))
        await self._thread.after_publish()

    async def item_completed(self, item: dict[str, Any]) -> None:
        item_id = item["id"]
        self._check_open(item_id)
        at_ms = objects.now_ms()
        item = objects.completed_item(item, self._turn.items[item_id].get("startedAtMs"), at_ms)
        await self._store_completed(item)

    async def _store_completed(self, item: dict[str, Any]) -> None:
        item_id, at_ms = item["id"], item["completedAtMs"]
        thread, turn = self._thread, self._turn
        # Stored before it is announced (§8.6); if the store gives up, the end of the turn
        # stores and announces the item as completed here.
        turn.unstored[item_id] = item
        await self._retry.write(
            thread, turn, lambda: thread.store.put_item(thread.id, turn.id, item)
        )
        del turn.unstored[item_id]
        self._turn.items[item_id] = item
        self._turn.completed.add(item_id)
        self._turn.parts.pop(item_id, None)
        self._turn.summary_parts.pop(item_id, None)
        self._thread.publish("item/completed", completed_params(self._params(), item, at_ms))
        await self._thread.after_publish()

    async def _delta(self, method: str, item_id: str, delta: str) -> None:
        parts = self._turn.parts.get(item_id)
        if parts is None:
            self._check_open(item_id)
            parts = self._turn.parts[item_id] = []
        parts.append(delta)
        thread = self._thread
        thread.publish(
            method,
            {"threadId": thread.id, "turnId": self._turn.id, "itemId": item_id, "delta": delta},
        )
        await thread.after_publish()

    async def agent_message_delta(self, item_id: str, delta: str) -> None:
        await self._delta("item/agentMessage/delta", item_id, delta)

    async def reasoning_summary_delta(
        self, item_id: str, delta: str, summary_index: int = 0
    ) -> None:
        self._check_open(item_id)
        chunks = self._turn.summary_parts.setdefault(item_id, {})
        chunks.setdefault(summary_index, []).append(delta)
        self._thread.publish(
            "item/reasoning/summaryTextDelta",
            self._params(itemId=item_id, delta=delta, summaryIndex=summary_index),
        )
        await self._thread.after_publish()

    async def command_output_delta(self, item_id: str, delta: str) -> None:
        await self._delta("item/commandExecution/outputDelta", item_id, delta)

    async def file_change_output_delta(self, item_id: str, delta: str) -> None:
        self._check_open(item_id)
        self._thread.publish(
            "item/fileChange/outputDelta", self._params(itemId=item_id, delta=delta)
        )
        await self._thread.after_publish()

    async def request_approval(
        self, kind: ApprovalKind, params: dict[str, Any]
    ) -> ApprovalDecision:
        self._check_open(params["itemId"])
        decision = await self._ask(self._thread, self._turn, kind, params)
        return decision  # type: ignore[return-value]

    async def history(self) -> list[dict[str, Any]]:
        turns = await self._thread.store.get_turns(self._thread.id)
        return [stored_turn(t) for t in turns if t.id != self._turn.id]

    async def until_steered(
        self, work: Callable[[], Awaitable[None]]
    ) -> list[dict[str, Any]] | None:
        """Run `work` until it ends or a turn/steer stops it (threads/steering.py). Then
        complete what it left open (as the end of a turn does), store and announce each
        steered userMessage item in order, and return their input joined; None when `work`
        ended with nothing steered."""
        thread, turn, retry = self._thread, self._turn, self._retry
        if not turn.steered:
            with trio.CancelScope() as scope:
                turn.steer_scope = scope
                try:
                    await work()
                finally:
                    turn.steer_scope = None
            if not turn.steered:
                return None
        waiting = self._settle(thread, turn) if self._settle is not None else set()
        for item_id in [i for i in turn.items if i not in turn.completed]:
            item = turn.unstored.get(item_id) or _cut_off(turn, item_id, waiting)
            await self._store_completed(item)
        steered: list[dict[str, Any]] = []
        while turn.steered:
            item = turn.steered.pop(0)
            turn.unstored[item["id"]] = item  # the end of the turn stores it if this fails
            await retry.write(
                thread, turn, partial(thread.store.put_item, thread.id, turn.id, item)
            )
            del turn.unstored[item["id"]]
            _announce_user_item(thread, turn, item)
            await thread.after_publish()
            steered.extend(item["content"])
        return steered

    async def retrying(self, message: str) -> None:
        error = objects.turn_error(message)
        self._thread.publish("error", self._params(error=error, willRetry=True))
        await self._thread.after_publish()


def stored_turn(turn: TurnRecord) -> dict[str, Any]:
    """A stored turn as snapshots show it (every item)."""
    return objects.turn_object(
        turn.id,
        turn.status,
        turn.error,
        list(turn.items),
        started_at_ms=turn.started_at_ms,
        completed_at_ms=turn.completed_at_ms,
    )


def completed_params(params: dict[str, Any], item: dict[str, Any], at_ms: int) -> dict[str, Any]:
    """`item/completed` params (0.171: the completion time; no token count is kept)."""
    return {**params, "item": item, "completedAtMs": at_ms, "contentTokenCount": None}


def _outcome(exc: BaseException) -> tuple[str, str | None]:
    """How an agent's exception ends the turn: (status, error message)."""
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return _outcome(exc.exceptions[0])
    if isinstance(exc, TurnFailed):
        return "failed", exc.message
    if isinstance(exc, TurnCancelled):
        return "interrupted", None
    if isinstance(exc, StoreUnavailable):  # a store read failed, or the turn gave up (§8.6)
        return "failed", exc.reason
    log.error("agent error", exc_info=exc)
    return "failed", f"internal error in the agent: {type(exc).__name__}"


async def run_turn(
    thread: LoadedThread,
    turn: ActiveTurn,
    agent: AgentBackend,
    user_item: dict[str, Any],
    ask: AskApproval,
    settle: SettleTurnRequests,
    retry: StoreRetry | None = None,
    *,
    input_failure: str | None = None,
) -> None:
    """The whole life of one turn, from `turn/started` to `turn/completed` (§6 order).
    `input_failure`: why turn/start could not store the input; it is stored (with the
    retries of every turn write) before it is announced and the agent runs."""
    status, message = "completed", None
    retry = retry or StoreRetry()
    runner = TurnRunner(thread, turn, ask, retry, settle)
    with turn.cancel_scope:
        thread.refresh_status()
        params = {"threadId": thread.id}
        started = objects.turn_object(
            turn.id, "inProgress", items_view="notLoaded", started_at_ms=turn.started_at_ms
        )
        thread.publish("turn/started", {**params, "turn": started})
        try:
            if input_failure is not None:
                user_id = user_item["id"]
                turn.unstored[user_id] = user_item
                retry.failed(thread, turn, input_failure)
                put = thread.store.put_item
                await retry.write(thread, turn, lambda: put(thread.id, turn.id, user_item))
                del turn.unstored[user_id]
            _announce_user_item(thread, turn, user_item)
            await thread.after_publish()
            try:
                await agent.run_turn(runner, turn.input)
            finally:
                turn.steerable = False  # no steer is taken once the agent has returned
        except (trio.Cancelled, KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            if isinstance(exc, BaseExceptionGroup) and exc.split(trio.Cancelled)[0] is not None:
                raise
            status, message = _outcome(exc)
    if turn.cancel_scope.cancelled_caught:
        status, message = "interrupted", None
    # Shielded from interrupts and shutdown; only a close that gives up on a failing
    # store cancels it (the turn then stays untold and stored inProgress).
    with turn.finish_scope:
        await finish_turn(thread, turn, status, message, settle, retry)


async def finish_turn(
    thread: LoadedThread,
    turn: ActiveTurn,
    status: str,
    message: str | None,
    settle: SettleTurnRequests,
    retry: StoreRetry | None = None,
) -> None:
    """End a turn: settle its pending requests, complete every started item, store the
    final state, then announce it (§6, §7.4, §8.6). Each write is retried until it is
    stored; a store that fails for longer than the retry policy allows makes the turn
    end failed with the store's reason."""
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
                _announce_user_item(thread, turn, item)
        for item_id in list(turn.items):
            if item_id in turn.completed:
                continue
            item = turn.unstored.get(item_id) or _cut_off(turn, item_id, waiting)
            at_ms = item["completedAtMs"]
            await store_item(item)
            turn.unstored.pop(item_id, None)
            turn.items[item_id] = item
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
        final = objects.turn_object(
            turn.id,
            status,
            error,
            summary,
            items_view="summary" if status == "completed" else "notLoaded",
            started_at_ms=turn.started_at_ms,
            completed_at_ms=completed_ms,
        )
        thread.publish("turn/completed", {"threadId": thread.id, "turn": final})
        thread.refresh_status()
    finally:
        thread.turn = None if thread.turn is turn else thread.turn
        turn.done.set()


def _announce_user_item(thread: LoadedThread, turn: ActiveTurn, user_item: dict[str, Any]) -> None:
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


def _cut_off(turn: ActiveTurn, item_id: str, waiting: set[str]) -> dict[str, Any]:
    """A started item the agent did not complete, as the end of the turn completes it."""
    item = turn.live_item(item_id)
    if item.get("status") == "inProgress":
        # A command or write that was waiting for approval ends declined (§7.4);
        # one that was cut off while running ends failed.
        item["status"] = "declined" if item_id in waiting else "failed"
    return objects.completed_item(item, item.get("startedAtMs"), objects.now_ms())
