"""Turns that are not a user's turn/start (PROTOCOL-like contract; the reference is Codex
0.171): thread/compact/start, thread/shellCommand, review/start.

Each runs through the ordinary turn machinery (starting.begin_special_turn, turn.run_turn:
the §6 order, statuses, storing before announcing, interrupts, rejoin snapshots) with a
small "agent" adapting the work, and no userMessage input:

- compaction: one `contextCompaction` item; its summary (the backend's
  `Compacting.compact`) is stored with the item, never sent (threads/history.py);
  `turn/completed` carries no item.
- user shell command: one commandExecution item, `source: "userShell"`
  (agents/shell.run_user_shell); `turn/completed` carries no item. Sent while a turn runs,
  the command joins that turn instead (side work, turn.TurnRunner): its item is an item of
  the running turn, which ends once both its agent and the command are done.
- review: the review items of agents/reviews.emit_review around the backend's
  `Reviewing.review`; `turn/completed` carries the review's agent message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from appserver.agents.base import AgentBackend, TurnContext
from appserver.agents.reviews import emit_review
from appserver.agents.shell import run_user_shell
from appserver.protocol import errors
from appserver.threads.loaded import ActiveTurn
from appserver.threads.turn import TurnRunner, side_context

DEFAULT_SHELL_TIMEOUT_MS = 3_600_000  # one hour, as the reference


class CompactionTurn:
    name = "compaction"

    def __init__(self, backend: AgentBackend) -> None:
        compact = getattr(backend, "compact", None)
        if compact is None:
            raise errors.InvalidRequest(f"the {backend.name} backend cannot compact a thread")
        self._compact = compact

    async def run_turn(self, ctx: TurnContext, user_input: Sequence[dict[str, Any]]) -> None:
        item = {"type": "contextCompaction", "id": ctx.new_item_id()}
        await ctx.item_started(item)
        summary = await self._compact(ctx)
        await ctx.item_completed({**item, "summary": str(summary)})


class ShellTurn:
    name = "userShell"

    def __init__(self, command: str, timeout_ms: int) -> None:
        self._command = command
        self._timeout_ms = timeout_ms

    async def run_turn(self, ctx: TurnContext, user_input: Sequence[dict[str, Any]]) -> None:
        await run_user_shell(ctx, self._command, self._timeout_ms)


class ReviewTurn:
    name = "review"

    def __init__(self, backend: AgentBackend, target: dict[str, Any]) -> None:
        review = getattr(backend, "review", None)
        if review is None:
            raise errors.InvalidRequest(f"the {backend.name} backend cannot review")
        self._review = review
        self._target = target

    async def run_turn(self, ctx: TurnContext, user_input: Sequence[dict[str, Any]]) -> None:
        async def work() -> str:
            return str(await self._review(ctx, self._target))

        await emit_review(ctx, self._target, work, with_prompt=True)


def join_running_turn(turn: ActiveTurn, command: str, timeout_ms: int) -> bool:
    """Run a user shell command as an item of the running `turn` (the reference's way);
    False when the turn takes no more side work (it is ending)."""
    runner = side_context(turn)
    if runner is None:
        return False

    async def work(ctx: TurnRunner) -> None:
        item_id = ctx.new_item_id()
        ctx.side_items.add(item_id)
        await run_user_shell(ctx, command, timeout_ms, item_id=item_id)

    return runner.start_side(work)
