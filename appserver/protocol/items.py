"""Thread items (PROTOCOL.md §4.5) and user input as appserver emits them (Codex 0.171).

User input is stored and echoed back as the client gave it: its one description is
`appserver.protocol.types.UserInput`. Every item carries the 0.171 `startedAtMs` /
`completedAtMs` (null while unknown).
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from appserver.protocol.types import UserInput  # §4.4: stored and echoed back as given
from appserver.protocol.wire import any_json, register_tagged_union

# --- items (§4.5) ----------------------------------------------------------------------

CommandExecutionStatus = Literal["inProgress", "completed", "failed", "declined"]
PatchApplyStatus = Literal["inProgress", "completed", "failed", "declined"]
DynamicToolCallStatus = Literal["inProgress", "completed", "failed"]


@attrs.frozen(kw_only=True)
class UserMessageThreadItem:
    type: Literal["userMessage"]
    id: str
    client_id: str | None = None
    content: list[UserInput]
    started_at_ms: int | None = None
    completed_at_ms: int | None = None


@attrs.frozen(kw_only=True)
class MemoryCitationEntry:
    path: str
    line_start: int
    line_end: int
    note: str


@attrs.frozen(kw_only=True)
class MemoryCitation:
    entries: list[MemoryCitationEntry]
    thread_ids: list[str]


@attrs.frozen(kw_only=True)
class AgentMessageThreadItem:
    type: Literal["agentMessage"]
    id: str
    text: str
    phase: Literal["commentary", "partial_answer", "final_answer"] | None = None
    memory_citation: MemoryCitation | None = None
    delivery: Literal["async"] | None = None
    started_at_ms: int | None = None
    completed_at_ms: int | None = None


@attrs.frozen(kw_only=True)
class ReasoningThreadItem:
    type: Literal["reasoning"]
    id: str
    summary: list[str] | None = None
    content: list[str] | None = None
    started_at_ms: int | None = None
    completed_at_ms: int | None = None


@attrs.frozen(kw_only=True)
class PlanThreadItem:
    type: Literal["plan"]
    id: str
    text: str
    started_at_ms: int | None = None
    completed_at_ms: int | None = None


@attrs.frozen(kw_only=True)
class UnknownCommandAction:
    type: Literal["unknown"]
    command: str


@attrs.frozen(kw_only=True)
class ReadCommandAction:
    type: Literal["read"]
    command: str
    name: str
    path: str


@attrs.frozen(kw_only=True)
class ListFilesCommandAction:
    type: Literal["listFiles"]
    command: str
    path: str | None = None


@attrs.frozen(kw_only=True)
class SearchCommandAction:
    type: Literal["search"]
    command: str
    path: str | None = None
    query: str | None = None


CommandAction = (
    UnknownCommandAction | ReadCommandAction | ListFilesCommandAction | SearchCommandAction
)


@attrs.frozen(kw_only=True)
class CommandExecutionThreadItem:
    type: Literal["commandExecution"]
    id: str
    command: str
    cwd: str
    process_id: str | None = None
    source: Literal["agent", "userShell", "unifiedExecStartup", "unifiedExecInteraction"] | None = (
        None
    )
    status: CommandExecutionStatus
    command_actions: list[CommandAction]
    aggregated_output: str | None = None
    exit_code: int | None = None
    duration_ms: int | None = None
    plugin_id: str | None = None
    script_path: str | None = None
    started_at_ms: int | None = None
    completed_at_ms: int | None = None


@attrs.frozen(kw_only=True)
class AddPatchChangeKind:
    type: Literal["add"]


@attrs.frozen(kw_only=True)
class DeletePatchChangeKind:
    type: Literal["delete"]


@attrs.frozen(kw_only=True)
class UpdatePatchChangeKind:
    type: Literal["update"]
    move_path: str | None = None


PatchChangeKind = AddPatchChangeKind | DeletePatchChangeKind | UpdatePatchChangeKind


@attrs.frozen(kw_only=True)
class FileUpdateChange:
    path: str
    kind: PatchChangeKind
    diff: str


@attrs.frozen(kw_only=True)
class FileChangeThreadItem:
    type: Literal["fileChange"]
    id: str
    changes: list[FileUpdateChange]
    status: PatchApplyStatus
    started_at_ms: int | None = None
    completed_at_ms: int | None = None


@attrs.frozen(kw_only=True)
class InputTextContentItem:
    type: Literal["inputText"]
    text: str


@attrs.frozen(kw_only=True)
class InputImageContentItem:
    type: Literal["inputImage"]
    image_url: str


@attrs.frozen(kw_only=True)
class InputAudioContentItem:
    type: Literal["inputAudio"]
    audio_url: str


DynamicToolCallOutputContentItem = (
    InputTextContentItem | InputImageContentItem | InputAudioContentItem
)


@attrs.frozen(kw_only=True)
class DynamicToolCallThreadItem:
    type: Literal["dynamicToolCall"]
    id: str
    tool: str
    namespace: str | None = None
    arguments: Any = attrs.field(default=None, metadata=any_json(required=True))
    status: DynamicToolCallStatus
    content_items: list[DynamicToolCallOutputContentItem] | None = None
    success: bool | None = None
    duration_ms: int | None = None
    started_at_ms: int | None = None
    completed_at_ms: int | None = None


@attrs.frozen(kw_only=True)
class ContextCompactionThreadItem:
    """thread/compact/start's item (the summary is kept in the store, never sent)."""

    type: Literal["contextCompaction"]
    id: str
    started_at_ms: int | None = None
    completed_at_ms: int | None = None


@attrs.frozen(kw_only=True)
class EnteredReviewModeThreadItem:
    """review/start: `review` is the review's label (e.g. `current changes`)."""

    type: Literal["enteredReviewMode"]
    id: str
    review: str
    started_at_ms: int | None = None
    completed_at_ms: int | None = None


@attrs.frozen(kw_only=True)
class ExitedReviewModeThreadItem:
    """review/start: `review` is the review's text."""

    type: Literal["exitedReviewMode"]
    id: str
    review: str
    started_at_ms: int | None = None
    completed_at_ms: int | None = None


ThreadItem = (
    UserMessageThreadItem
    | AgentMessageThreadItem
    | ReasoningThreadItem
    | PlanThreadItem
    | CommandExecutionThreadItem
    | FileChangeThreadItem
    | DynamicToolCallThreadItem
    | ContextCompactionThreadItem
    | EnteredReviewModeThreadItem
    | ExitedReviewModeThreadItem
)

for _union in (CommandAction, PatchChangeKind, DynamicToolCallOutputContentItem):
    register_tagged_union(_union)
register_tagged_union(ThreadItem)
