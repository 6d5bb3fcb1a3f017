"""Running one turn: the TurnContext the agent emits through, and the turn's life.

The turn task belongs to the registry's nursery; its cancel scope lives on the ActiveTurn
so `turn/interrupt` cancels exactly that turn. Besides its agent, a running turn takes
side work (a thread/shellCommand sent while it runs, threads/special.py): it runs in the
turn's own side nursery, so the turn ends only once it is done, and an interrupt stops it
with the agent.
"""

from __future__ import annotations

import logging
import weakref
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
from appserver.jsonrpc.codec import notification_prefix, string_json
from appserver.store.errors import StoreUnavailable
from appserver.threads import audit, history, objects
from appserver.threads.ending import (
    SettleTurnRequests,
    announce_user_item,
    cut_off,
    finish_turn,
)
from appserver.threads.history import completed_params, stored_turn, wire_item
from appserver.threads.loaded import ActiveTurn, LoadedThread
from appserver.threads.persist import StoreRetry
from appserver.threads.requests import ServerRequests
from appserver.threads.talkback import TalkBack

log = logging.getLogger("appserver.turn")

SideWork = Callable[["TurnRunner"], Awaitable[None]]

__all__ = ["TurnRunner", "completed_params", "finish_turn", "run_turn", "stored_turn"]

# The context of each running turn while it takes side work (run_turn registers it).
_RUNNERS: weakref.WeakKeyDictionary[ActiveTurn, TurnRunner] = weakref.WeakKeyDictionary()


def side_context(turn: ActiveTurn) -> TurnRunner | None:
    """The context of a running turn that still takes side work, else None."""
    return _RUNNERS.get(turn)


class TurnRunner(TalkBack):
    """The TurnContext of one turn (see appserver.agents.base), with Steering and
    TalkingBack (threads/talkback.py)."""

    def __init__(
        self,
        thread: LoadedThread,
        turn: ActiveTurn,
        requests: ServerRequests,
        retry: StoreRetry | None = None,
        settle: SettleTurnRequests | None = None,
    ) -> None:
        self._thread = thread
        self._turn = turn
        self._requests = requests
        self._retry = retry or StoreRetry()
        self._settle = settle
        self._side: trio.Nursery | None = None
        self._delta_prefixes: dict[tuple[str, str], str] = {}  # see _delta
        # Items of side work: a steer does not cut them off (they are not the agent's).
        self.side_items: set[str] = set()

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
    def base_instructions(self) -> str | None:
        value = self._thread.record.settings.get("baseInstructions")
        return value if isinstance(value, str) else None

    @property
    def developer_instructions(self) -> str | None:
        value = self._thread.record.settings.get("developerInstructions")
        return value if isinstance(value, str) else None

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

    async def _store_completed(self, stored: dict[str, Any]) -> None:
        """Store `stored` (with its private keys, threads/history.py), then announce it."""
        item_id, at_ms = stored["id"], stored["completedAtMs"]
        thread, turn = self._thread, self._turn
        # Stored before it is announced (§8.6); if the store gives up, the end of the turn
        # stores and announces the item as completed here.
        turn.unstored[item_id] = stored
        await self._retry.write(
            thread, turn, lambda: thread.store.put_item(thread.id, turn.id, stored)
        )
        del turn.unstored[item_id]
        item = self._turn.items[item_id] = wire_item(stored)
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
        # The text up to the delta is the same for every delta of an item.
        prefix = self._delta_prefixes.get((method, item_id))
        if prefix is None:
            ids = {"threadId": thread.id, "turnId": self._turn.id, "itemId": item_id}
            prefix = self._delta_prefixes[method, item_id] = notification_prefix(
                method, ids, "delta"
            )
        encoded = string_json(delta)
        if encoded is not None:
            thread.publish_text(method, f"{prefix}{encoded}}}}}")
        else:  # a lone surrogate: the whole message is written in ASCII
            ids = {"threadId": thread.id, "turnId": self._turn.id, "itemId": item_id}
            thread.publish(method, {**ids, "delta": delta})
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
        decision = await self._requests.ask(self._thread, self._turn, kind, params)
        return decision  # type: ignore[return-value]

    async def history(self) -> list[dict[str, Any]]:
        turns = await self._thread.store.get_turns(self._thread.id)
        injected = await self._thread.store.get_injected_items(self._thread.id)
        return history.history(turns, self._turn.id, injected)

    def start_side(self, work: SideWork) -> bool:
        """Run `work` beside the agent, in this turn (False once the turn takes no more
        side work: its agent and side work are over and it is ending)."""
        if self._side is None:
            return False
        try:
            self._side.start_soon(work, self)
        except RuntimeError:  # closed: its last work ended, the turn is about to end
            return False
        return True

    async def run_with_side_work(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` (the agent) with this turn open to side work; return once both the
        agent and every side work are done."""
        async with trio.open_nursery() as nursery:
            self._side = nursery
            _RUNNERS[self._turn] = self
            try:
                await work()
            finally:
                self._turn.steerable = False  # no steer is taken once the agent has returned
        self._side = None
        _RUNNERS.pop(self._turn, None)

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
        open_items = [i for i in turn.items if i not in turn.completed and i not in self.side_items]
        for item_id in open_items:
            item = turn.unstored.get(item_id) or cut_off(turn, item_id, waiting)
            await self._store_completed(item)
        steered: list[dict[str, Any]] = []
        while turn.steered:
            item = turn.steered.pop(0)
            turn.unstored[item["id"]] = item  # the end of the turn stores it if this fails
            await retry.write(
                thread, turn, partial(thread.store.put_item, thread.id, turn.id, item)
            )
            del turn.unstored[item["id"]]
            announce_user_item(thread, turn, item)
            await thread.after_publish()
            steered.extend(item["content"])
        return steered

    async def retrying(self, message: str) -> None:
        error = objects.turn_error(message)
        self._thread.publish("error", self._params(error=error, willRetry=True))
        await self._thread.after_publish()


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
    user_item: dict[str, Any] | None,
    requests: ServerRequests,
    settle: SettleTurnRequests,
    retry: StoreRetry | None = None,
    *,
    input_failure: str | None = None,
    summary_view: bool = True,
) -> None:
    """The whole life of one turn, from `turn/started` to `turn/completed` (§6 order).
    `user_item`: the turn's stored input (None for a turn without one: compaction, a user
    shell command, a review; threads/special.py). `input_failure`: why turn/start could
    not store the input; it is stored (with the retries of every turn write) before it is
    announced and the agent runs. `summary_view`: see ending.finish_turn."""
    status, message = "completed", None
    retry = retry or StoreRetry()
    runner = TurnRunner(thread, turn, requests, retry, settle)
    with turn.cancel_scope:
        thread.refresh_status()
        params = {"threadId": thread.id}
        started = objects.turn_object(
            turn.id, "inProgress", items_view="notLoaded", started_at_ms=turn.started_at_ms
        )
        thread.publish("turn/started", {**params, "turn": started})
        audit.turn_started(thread, turn, audit.turn_kind(agent))
        try:
            if user_item is not None:
                await _announce_input(thread, turn, user_item, retry, input_failure)
            await thread.after_publish()
            await runner.run_with_side_work(partial(agent.run_turn, runner, turn.input))
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
        status, completed_ms = await finish_turn(
            thread, turn, status, message, settle, retry, summary_view=summary_view
        )
        audit.turn_ended(thread, turn, audit.turn_kind(agent), status, completed_ms)


async def _announce_input(
    thread: LoadedThread,
    turn: ActiveTurn,
    user_item: dict[str, Any],
    retry: StoreRetry,
    input_failure: str | None,
) -> None:
    if input_failure is not None:
        user_id = user_item["id"]
        turn.unstored[user_id] = user_item
        retry.failed(thread, turn, input_failure)
        put = thread.store.put_item
        await retry.write(thread, turn, lambda: put(thread.id, turn.id, user_item))
        del turn.unstored[user_id]
    announce_user_item(thread, turn, user_item)
