"""A TurnContext test double: records every emitted event in order, answers approvals from
a scripted list, and checks the ordering rules of PROTOCOL.md §6 / §7.1 as events arrive."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import trio

from appserver.agents.base import ApprovalDecision, ApprovalKind

from .schemas import check_approval, check_item


@dataclass(frozen=True)
class Event:
    name: str  # started | completed | agent_delta | reasoning_delta | output_delta | file_delta
    #            | approval
    item_id: str
    data: Any  # the item (started/completed), the delta text, or (kind, params) of approval
    summary_index: int | None = None


class RecordingContext:
    """Satisfies appserver.agents.base.TurnContext."""

    def __init__(
        self,
        cwd: str,
        *,
        approval_policy: str = "never",
        sandbox: str = "workspace-write",
        decisions: Iterable[ApprovalDecision | None] = (),
        session_approvals: set[str] | None = None,
        model: str = "script",
        history: list[dict[str, Any]] | None = None,
    ) -> None:
        self.thread_id = str(uuid.uuid4())
        self.turn_id = str(uuid.uuid4())
        self.cwd = cwd
        self.approval_policy = approval_policy
        self.sandbox = sandbox
        self.model = model
        self.base_instructions: str | None = None
        self.developer_instructions: str | None = None
        # Earlier turns (wire form) returned by history(); `retrying` messages, in order.
        self.prior_turns: list[dict[str, Any]] = [] if history is None else history
        self.retries: list[str] = []
        self.session_approvals: set[str] = set() if session_approvals is None else session_approvals
        # Answers to approval requests, in order; None: never answer (wait until cancelled).
        self.decisions: list[ApprovalDecision | None] = list(decisions)
        self.events: list[Event] = []
        self._open: dict[str, str] = {}  # started, not completed: item id -> type
        self._done: set[str] = set()
        self._changed = trio.Event()

    # ---- TurnContext -------------------------------------------------------------------

    def new_item_id(self) -> str:
        return str(uuid.uuid4())

    async def item_started(self, item: dict[str, Any]) -> None:
        item_id = item["id"]
        assert item_id not in self._open and item_id not in self._done, item_id
        check_item(item)
        self._open[item_id] = item["type"]
        self._record(Event("started", item_id, copy.deepcopy(item)))

    async def item_completed(self, item: dict[str, Any]) -> None:
        item_id = item["id"]
        check_item(item)
        assert self._open.pop(item_id, None) == item["type"], f"not started: {item_id}"
        self._done.add(item_id)
        self._record(Event("completed", item_id, copy.deepcopy(item)))

    async def agent_message_delta(self, item_id: str, delta: str) -> None:
        self._delta("agent_delta", "agentMessage", item_id, delta)

    async def reasoning_summary_delta(
        self, item_id: str, delta: str, summary_index: int = 0
    ) -> None:
        self._delta("reasoning_delta", "reasoning", item_id, delta, summary_index)

    async def command_output_delta(self, item_id: str, delta: str) -> None:
        self._delta("output_delta", "commandExecution", item_id, delta)

    async def file_change_output_delta(self, item_id: str, delta: str) -> None:
        self._delta("file_delta", "fileChange", item_id, delta)

    async def request_approval(
        self, kind: ApprovalKind, params: dict[str, Any]
    ) -> ApprovalDecision:
        item_id = params["itemId"]
        assert self._open.get(item_id) == kind, f"approval for an item not in progress: {params}"
        check_approval(kind, params)
        self._record(Event("approval", item_id, (kind, copy.deepcopy(params))))
        assert self.decisions, f"unexpected approval request: {kind} {params}"
        decision = self.decisions.pop(0)
        if decision is None:
            await trio.sleep_forever()
        await trio.lowlevel.checkpoint()
        return decision

    async def history(self) -> list[dict[str, Any]]:
        await trio.lowlevel.checkpoint()
        return copy.deepcopy(self.prior_turns)

    async def retrying(self, message: str) -> None:
        self.retries.append(message)
        await trio.lowlevel.checkpoint()

    # ---- inspection ----------------------------------------------------------------------

    def _delta(
        self, name: str, item_type: str, item_id: str, delta: str, index: int | None = None
    ) -> None:
        assert isinstance(delta, str)
        assert self._open.get(item_id) == item_type, f"{name} outside its {item_type} item"
        self._record(Event(name, item_id, delta, index))

    def _record(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, predicate: Callable[[RecordingContext], bool]) -> None:
        """Wait (without polling) until `predicate(self)` holds; bound it with fail_after."""
        while not predicate(self):
            await self._changed.wait()

    def named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.name == name]

    def completed(self, item_type: str | None = None) -> list[dict[str, Any]]:
        items = [e.data for e in self.named("completed")]
        return [i for i in items if item_type is None or i["type"] == item_type]

    def started(self, item_type: str | None = None) -> list[dict[str, Any]]:
        items = [e.data for e in self.named("started")]
        return [i for i in items if item_type is None or i["type"] == item_type]

    def deltas(self, item_id: str) -> list[str]:
        return [e.data for e in self.events if e.item_id == item_id and e.name.endswith("_delta")]

    def approvals(self) -> list[tuple[ApprovalKind, dict[str, Any]]]:
        return [e.data for e in self.named("approval")]

    def output(self, item_id: str) -> str:
        return "".join(self.deltas(item_id))

    @property
    def open_items(self) -> dict[str, str]:
        return dict(self._open)
