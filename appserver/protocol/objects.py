"""The objects appserver emits (PROTOCOL.md §4) as Codex 0.171 has them: thread statuses,
turns, threads (user input and items: `items`; policies: `policies`).

The hot path builds these as plain dicts (`appserver.threads.objects`); these types are the
one description of their shape: the schema export reads them and the tests structure real
server output into them. Fields the 0.171 schema requires have no default (or are
`nullable()` when their value may be null); optional ones are `X | None = None`.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from appserver.protocol.items import ThreadItem
from appserver.protocol.wire import nullable, register_tagged_union

# --- ThreadStatus (§4.2) ---------------------------------------------------------------


@attrs.frozen(kw_only=True)
class NotLoadedThreadStatus:
    type: Literal["notLoaded"]


@attrs.frozen(kw_only=True)
class IdleThreadStatus:
    type: Literal["idle"]


@attrs.frozen(kw_only=True)
class SystemErrorThreadStatus:
    type: Literal["systemError"]


ThreadActiveFlag = Literal["waitingOnApproval", "waitingOnUserInput"]


@attrs.frozen(kw_only=True)
class ActiveThreadStatus:
    type: Literal["active"]
    active_flags: list[ThreadActiveFlag]


ThreadStatus = (
    NotLoadedThreadStatus | IdleThreadStatus | SystemErrorThreadStatus | ActiveThreadStatus
)

# --- Turn (§4.3) -----------------------------------------------------------------------

CodexErrorInfo = Any  # a string or a one-key object in Codex; appserver sends null


@attrs.frozen(kw_only=True)
class TurnError:
    message: str
    codex_error_info: CodexErrorInfo | None = None
    additional_details: str | None = None
    misalignment: dict[str, Any] | None = None


TurnStatus = Literal["inProgress", "completed", "interrupted", "failed"]
TurnItemsView = Literal["notLoaded", "summary", "full"]


@attrs.frozen(kw_only=True)
class Turn:
    id: str
    items: list[ThreadItem]
    status: TurnStatus
    error: TurnError | None = None
    started_at: int | None = None
    completed_at: int | None = None
    duration_ms: int | None = None
    items_view: TurnItemsView | None = None
    root_turn_id: str | None = None


# --- Thread (§4.1) ---------------------------------------------------------------------

SessionSource = Literal["cli", "vscode", "exec", "appServer", "unknown"]
ThreadHistoryMode = Literal["legacy", "paginated"]


@attrs.frozen(kw_only=True)
class GitInfo:
    branch: str | None = None
    origin_url: str | None = None
    sha: str | None = None


@attrs.frozen(kw_only=True)
class ThreadSection:
    id: str
    name: str
    appearance: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class Thread:
    id: str
    session_id: str
    project_id: str | None = nullable()
    preview: str
    name: str | None = None
    ephemeral: bool
    model_provider: str
    model: str | None = None
    reasoning_effort: str | None = None
    cwd: str
    created_at: int
    updated_at: int
    recency_at: int | None = None
    status: ThreadStatus
    path: str | None = None
    cli_version: str
    source: SessionSource
    thread_source: str | None = None
    originator: str | None = None
    forked_from_id: str | None = None
    parent_thread_id: str | None = None
    agent_nickname: str | None = None
    agent_role: str | None = None
    git_info: GitInfo | None = None
    history_mode: ThreadHistoryMode | None = None
    section: ThreadSection | None = None
    section_entered_at: int | None = None
    turns: list[Turn]


register_tagged_union(ThreadStatus)
