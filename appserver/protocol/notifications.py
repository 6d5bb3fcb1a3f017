"""Notifications the server sends (PROTOCOL.md §6), as Codex 0.171 has them.

`NOTIFICATIONS` maps each method to its Codex schema name and params type.
"""

from __future__ import annotations

from typing import Literal

import attrs

from appserver.protocol import fs_types as fst
from appserver.protocol import lifecycle_types as lct
from appserver.protocol.command_types import CommandExecOutputDeltaNotification
from appserver.protocol.items import ThreadItem
from appserver.protocol.objects import Thread, ThreadStatus, Turn, TurnError
from appserver.protocol.wire import RequestId


@attrs.frozen(kw_only=True)
class ThreadStartedNotification:
    thread: Thread


@attrs.frozen(kw_only=True)
class ThreadStatusChangedNotification:
    thread_id: str
    status: ThreadStatus


@attrs.frozen(kw_only=True)
class ThreadIdNotification:
    """`{threadId}`: thread/closed, thread/archived, thread/unarchived."""

    thread_id: str


@attrs.frozen(kw_only=True)
class ThreadNameUpdatedNotification:
    thread_id: str
    thread_name: str | None = None


@attrs.frozen(kw_only=True)
class TurnNotification:
    """`{threadId, turn}`: turn/started, turn/completed."""

    thread_id: str
    turn: Turn


@attrs.frozen(kw_only=True)
class ItemStartedNotification:
    thread_id: str
    turn_id: str
    item: ThreadItem
    started_at_ms: int


@attrs.frozen(kw_only=True)
class ItemCompletedNotification:
    thread_id: str
    turn_id: str
    item: ThreadItem
    completed_at_ms: int
    content_token_count: int | None = None


@attrs.frozen(kw_only=True)
class ItemDeltaNotification:
    """`{threadId, turnId, itemId, delta}`: the agent message and output deltas."""

    thread_id: str
    turn_id: str
    item_id: str
    delta: str


@attrs.frozen(kw_only=True)
class ReasoningSummaryTextDeltaNotification(ItemDeltaNotification):
    summary_index: int


@attrs.frozen(kw_only=True)
class ServerRequestResolvedNotification:
    thread_id: str
    request_id: RequestId


@attrs.frozen(kw_only=True)
class ErrorNotification:
    error: TurnError
    will_retry: bool
    thread_id: str
    turn_id: str


@attrs.frozen(kw_only=True)
class WarningNotification:
    message: str
    thread_id: str | None = None


@attrs.frozen(kw_only=True)
class TurnPlanStep:
    step: str
    status: Literal["pending", "inProgress", "completed"]


@attrs.frozen(kw_only=True)
class TurnPlanUpdatedNotification:
    thread_id: str
    turn_id: str
    plan: list[TurnPlanStep]
    explanation: str | None = None


@attrs.frozen(kw_only=True)
class TurnDiffUpdatedNotification:
    thread_id: str
    turn_id: str
    diff: str


@attrs.frozen(kw_only=True)
class TokenUsageBreakdown:
    total_tokens: int
    input_tokens: int
    cached_input_tokens: int
    cache_write_input_tokens: int = 0
    output_tokens: int
    reasoning_output_tokens: int


@attrs.frozen(kw_only=True)
class ThreadTokenUsage:
    total: TokenUsageBreakdown
    last: TokenUsageBreakdown
    model_context_window: int | None = None


@attrs.frozen(kw_only=True)
class ThreadTokenUsageUpdatedNotification:
    thread_id: str
    turn_id: str
    token_usage: ThreadTokenUsage


@attrs.frozen(kw_only=True)
class NotificationSpec:
    name: str  # the Codex schema name, e.g. `ThreadStartedNotification`
    params: type


def _n(name: str, params: type) -> NotificationSpec:
    return NotificationSpec(name=name, params=params)


NOTIFICATIONS: dict[str, NotificationSpec] = {
    "thread/started": _n("ThreadStartedNotification", ThreadStartedNotification),
    "thread/status/changed": _n("ThreadStatusChangedNotification", ThreadStatusChangedNotification),
    "thread/closed": _n("ThreadClosedNotification", ThreadIdNotification),
    "thread/archived": _n("ThreadArchivedNotification", ThreadIdNotification),
    "thread/unarchived": _n("ThreadUnarchivedNotification", ThreadIdNotification),
    "thread/name/updated": _n("ThreadNameUpdatedNotification", ThreadNameUpdatedNotification),
    "turn/started": _n("TurnStartedNotification", TurnNotification),
    "turn/completed": _n("TurnCompletedNotification", TurnNotification),
    "item/started": _n("ItemStartedNotification", ItemStartedNotification),
    "item/completed": _n("ItemCompletedNotification", ItemCompletedNotification),
    "item/agentMessage/delta": _n("AgentMessageDeltaNotification", ItemDeltaNotification),
    "item/reasoning/summaryTextDelta": _n(
        "ReasoningSummaryTextDeltaNotification", ReasoningSummaryTextDeltaNotification
    ),
    "item/commandExecution/outputDelta": _n(
        "CommandExecutionOutputDeltaNotification", ItemDeltaNotification
    ),
    "item/fileChange/outputDelta": _n("FileChangeOutputDeltaNotification", ItemDeltaNotification),
    "serverRequest/resolved": _n(
        "ServerRequestResolvedNotification", ServerRequestResolvedNotification
    ),
    "error": _n("ErrorNotification", ErrorNotification),
    # --- talking back (issue 15) ---
    "turn/plan/updated": _n("TurnPlanUpdatedNotification", TurnPlanUpdatedNotification),
    "turn/diff/updated": _n("TurnDiffUpdatedNotification", TurnDiffUpdatedNotification),
    "thread/tokenUsage/updated": _n(
        "ThreadTokenUsageUpdatedNotification", ThreadTokenUsageUpdatedNotification
    ),
    # --- end of talking back ---
    "warning": _n("WarningNotification", WarningNotification),
    "fs/changed": _n("FsChangedNotification", fst.FsChangedNotification),
    "command/exec/outputDelta": _n(
        "CommandExecOutputDeltaNotification", CommandExecOutputDeltaNotification
    ),
    # --- thread lifecycle ---
    "thread/deleted": _n("ThreadDeletedNotification", lct.ThreadDeletedNotification),
    "thread/reverted": _n("ThreadRevertedNotification", lct.ThreadRevertedNotification),
    # --- end of thread lifecycle ---
    # --- special turns ---
    # --- end of special turns ---
    # --- search ---
    # --- end of search ---
}
