"""What an agent backend sees: the AgentBackend protocol and the TurnContext emit API.

Items are plain wire-form dicts (see PROTOCOL.md §4.5). The thread behind a TurnContext
stores, tracks and fans out everything an agent emits; the agent only describes its work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, Protocol

ApprovalDecision = Literal["accept", "acceptForSession", "decline", "cancel", "error"]
ApprovalKind = Literal["commandExecution", "fileChange"]


def agent_message_item(item_id: str, text: str) -> dict[str, Any]:
    """An agentMessage item (§4.5): Codex 0.171's optional fields are null (no phase,
    citation, moderation, delivery or questions)."""
    return {
        "id": item_id,
        "type": "agentMessage",
        "text": text,
        "phase": None,
        "memoryCitation": None,
        "moderation": None,
        "delivery": None,
        "questions": None,
    }


class TurnFailed(Exception):
    """Raised by an agent to end the turn `failed` with this message (after an `error`
    notification)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TurnCancelled(Exception):
    """Raised by an agent to end the turn `interrupted` (an approval answered `cancel`)."""


class TurnContext(Protocol):
    @property
    def thread_id(self) -> str: ...
    @property
    def turn_id(self) -> str: ...
    @property
    def cwd(self) -> str: ...
    @property
    def approval_policy(self) -> str: ...  # untrusted | on-failure | on-request | never
    @property
    def sandbox(self) -> str: ...  # read-only | workspace-write | danger-full-access
    @property
    def model(self) -> str: ...  # the turn's model (the thread's `model` setting)
    @property
    def base_instructions(self) -> str | None: ...  # thread/start baseInstructions
    @property
    def developer_instructions(self) -> str | None: ...  # thread/start developerInstructions
    @property
    def session_approvals(self) -> set[str]: ...

    """Keys approved with acceptForSession while the thread stays loaded (agent-defined)."""

    def new_item_id(self) -> str: ...

    async def item_started(self, item: dict[str, Any]) -> None: ...
    async def item_completed(self, item: dict[str, Any]) -> None: ...
    async def agent_message_delta(self, item_id: str, delta: str) -> None: ...
    async def reasoning_summary_delta(
        self, item_id: str, delta: str, summary_index: int = 0
    ) -> None: ...
    async def command_output_delta(self, item_id: str, delta: str) -> None: ...
    async def file_change_output_delta(self, item_id: str, delta: str) -> None: ...

    async def request_approval(
        self, kind: ApprovalKind, params: dict[str, Any]
    ) -> ApprovalDecision: ...

    """Ask the thread's subscribers. `params` is the request's params without threadId /
    turnId (the context adds them). Returns the decision; "error" means the client answered
    with a JSON-RPC error."""

    async def history(self) -> list[dict[str, Any]]: ...

    """The thread's earlier turns, oldest first, as wire-form Turn objects (`id`, `items`,
    `status`, `error`; PROTOCOL.md §4.3) with their stored items."""

    async def retrying(self, message: str) -> None: ...

    """Tell the subscribers that a step failed and will be retried: an `error` notification
    with `willRetry: true` (the turn goes on)."""


class Steering(Protocol):
    """What a TurnContext adds for turn/steer (PROTOCOL.md §10), kept apart from
    TurnContext so that contexts without it (a test's recording context) still serve; an
    agent that takes steered input says so with a class attribute `steerable = True`."""

    async def until_steered(
        self, work: Callable[[], Awaitable[None]]
    ) -> list[dict[str, Any]] | None: ...

    """Run `work` until it returns or a steer stops it (the steer cancels it, at its next
    checkpoint). On a steer, the items it left open are completed with what they have and
    the steered userMessage items are stored and announced; returns the steered input
    (every steer's entries, in order), or None when `work` returned with nothing steered."""


async def until_steered(
    ctx: TurnContext, work: Callable[[], Awaitable[None]]
) -> list[dict[str, Any]] | None:
    """`ctx.until_steered(work)`, or just `work()` for a context without steering."""
    steering = getattr(ctx, "until_steered", None)
    if steering is None:
        await work()
        return None
    result: list[dict[str, Any]] | None = await steering(work)
    return result


class TalkingBack(Protocol):
    """What a TurnContext adds beyond approvals (issue 15), kept apart from TurnContext so
    that contexts without it (a test's recording context) still serve. Every request is
    routed as approvals are (PROTOCOL.md §7.2: every subscriber, first answer wins,
    replayed on rejoin, settled when the turn ends, §7.4). The server's context
    (threads/talkback.py) has all of it.

    A request waits until a client answers, however long: while it is pending the turn
    runs and the thread is `active`; an interrupt (or closing the thread) cancels the
    agent as any await would (trio.Cancelled, which must propagate), and the request is
    then settled (`serverRequest/resolved`) and the items it left open completed by the
    end of the turn (a dynamic tool call ends `failed`)."""

    @property
    def dynamic_tools(self) -> list[dict[str, Any]]: ...

    """The tools the thread declared at thread/start (`dynamicTools`, wire form: `{type:
    "function", name, description, inputSchema, deferLoading}` or `{type: "namespace",
    name, description, tools: [function...]}`), stored with the thread: they survive a
    resume and a restart, and a fork copies them. `[]` when none were declared."""

    async def request_user_input(
        self, item_id: str, questions: list[dict[str, Any]], *, is_blocking: bool = True
    ) -> dict[str, Any] | None: ...

    """`item/tool/requestUserInput` with `itemId: item_id` (the id of the agent's tool call
    the questions belong to; it need not be a started item) and the wire
    ToolRequestUserInputQuestion objects (`id`, `header`, `question`, `isOther`,
    `isSecret`, `options`): the thread is `active` + `waitingOnUserInput` while it is
    pending. Returns the answer's `answers` mapping (question id -> `{"answers": [...]}`),
    or None after a JSON-RPC error answer or an answer of another shape."""

    async def call_client_tool(
        self, tool: str, arguments: Any, *, namespace: str | None = None
    ) -> dict[str, Any] | None: ...

    """Call a dynamic tool the client declared: the context starts a `dynamicToolCall`
    item, sends `item/tool/call` (`callId` is the item's id), completes the item with the
    answer (`completed` when `success`, else `failed`; `durationMs`, `contentItems`) and
    returns the answer (`{"contentItems": [...], "success": bool}`), or None after an
    error answer or an answer of another shape (the item then ends `failed`). The
    context does not check that the tool was declared: the agent does."""

    async def request_permissions(
        self, item_id: str, permissions: dict[str, Any], reason: str | None = None
    ) -> dict[str, Any] | None: ...

    """`item/permissions/requestApproval` (`cwd` is the turn's, `permissions` the wire
    RequestPermissionProfile, as given); the thread is `active` + `waitingOnApproval`
    while it is pending. Returns `{"permissions": granted, "scope": "turn" | "session"}`
    or None after an error answer or an answer of another shape. What a grant allows
    is the agent's to enforce."""

    async def plan_updated(
        self, plan: list[dict[str, Any]], explanation: str | None = None
    ) -> None: ...

    """`turn/plan/updated` with the steps (`{"step": ..., "status": pending | inProgress |
    completed}`) to the subscribers."""

    async def token_usage(self, usage: dict[str, Any]) -> None: ...

    """`thread/tokenUsage/updated`: `usage` is the last call's counts (`inputTokens`,
    `cachedInputTokens`, `cacheWriteInputTokens`, `outputTokens`,
    `reasoningOutputTokens`, `totalTokens`; a missing count is 0, `totalTokens` defaults
    to input + output) and optionally `modelContextWindow` (an int; else null). The
    context keeps the thread's running total while it stays loaded."""

    async def diff_updated(self, diff: str) -> None: ...

    """`turn/diff/updated` with the turn's aggregated unified diff so far (the agent
    aggregates: every file the turn changed, from before its first change to now)."""


class Compacting(Protocol):
    """What a backend adds for thread/compact/start (issue 14)."""

    async def compact(self, ctx: TurnContext) -> str: ...

    """Summarise the conversation so far (`ctx.history()`) and return the summary. The
    server records the turn's `contextCompaction` item (and stores the summary with it);
    in later turns' `ctx.history()` the turns up to the compaction are replaced by one
    history entry `{"type": "contextCompaction", "id": ..., "summary": TEXT}` (history
    only, never on the wire).

    Precisely (threads/history.py): history() still returns wire Turn objects; it starts
    at the latest compaction. The turns before the compaction's turn are left out, and
    the compaction's turn is the first entry (its `id`, `status`, ... as stored) whose
    `items` begin with that entry (the item with its `summary`), followed by any item
    the turn held after it (a user shell command that joined it). A compaction that
    failed or was interrupted stores no summary and replaces nothing. The summary of an
    earlier compaction reaches `compact` the same way, as the first history entry."""


class Reviewing(Protocol):
    """What a backend adds for review/start (issue 14)."""

    async def review(self, ctx: TurnContext, target: dict[str, Any]) -> str: ...

    """Review `target` (the wire ReviewTarget: `uncommittedChanges`, `baseBranch`,
    `commit` or `custom`) in `ctx.cwd`, emitting any items it works with through `ctx`;
    return the review text. The server wraps the work in the `enteredReviewMode` /
    `exitedReviewMode` items (the latter's `review` is the returned text).

    Precisely (agents/reviews.py): before `review` runs, the turn holds
    `enteredReviewMode` (the target's label) and a userMessage with the review prompt
    (the reference's wording per target; `ctx.history()` does not include this turn);
    after it returns, `exitedReviewMode` and an agentMessage with the text. Raising
    TurnFailed fails the turn with no `exitedReviewMode`."""


class AgentBackend(Protocol):
    name: str

    async def run_turn(self, ctx: TurnContext, user_input: Sequence[dict[str, Any]]) -> None:
        """Do the turn's work, emitting items through `ctx`. Return normally to complete
        the turn; raise TurnFailed / TurnCancelled to end it otherwise. Cancellation
        (turn/interrupt) arrives as trio.Cancelled and must propagate."""
        ...
