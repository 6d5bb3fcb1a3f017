"""thread/compact/start, thread/shellCommand and review/start, as Codex 0.171 has them
(`v2/ThreadCompactStart*.json`, `v2/ThreadShellCommand*.json`, `v2/ReviewStart*.json`)."""

from __future__ import annotations

from typing import Literal

import attrs

from appserver.protocol.objects import Turn
from appserver.protocol.wire import register_tagged_union


@attrs.frozen(kw_only=True)
class ThreadCompactStartParams:
    thread_id: str


@attrs.frozen(kw_only=True)
class ThreadShellCommandParams:
    thread_id: str
    command: str
    timeout_ms: int | None = None  # default one hour; 0 = an immediate timeout


@attrs.frozen(kw_only=True)
class UncommittedChangesReviewTarget:
    type: Literal["uncommittedChanges"]


@attrs.frozen(kw_only=True)
class BaseBranchReviewTarget:
    type: Literal["baseBranch"]
    branch: str


@attrs.frozen(kw_only=True)
class CommitReviewTarget:
    type: Literal["commit"]
    sha: str
    title: str | None = None


@attrs.frozen(kw_only=True)
class CustomReviewTarget:
    type: Literal["custom"]
    instructions: str


ReviewTarget = (
    UncommittedChangesReviewTarget
    | BaseBranchReviewTarget
    | CommitReviewTarget
    | CustomReviewTarget
)
register_tagged_union(ReviewTarget)


@attrs.frozen(kw_only=True)
class ReviewStartParams:
    thread_id: str
    target: ReviewTarget
    delivery: Literal["inline"] | None = None  # 0.171 reviews inline only


@attrs.frozen(kw_only=True)
class ReviewStartResponse:
    review_thread_id: str  # the thread given: reviews run inline
    turn: Turn
