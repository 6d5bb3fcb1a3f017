"""review/start for the OpenAI-compatible backend (agents.base.Reviewing).

The change is gathered with read-only git in the thread's cwd (openai_git: it reads,
never writes, and needs no approval): `git diff --cached`, `git diff` and the untracked
files for `uncommittedChanges`, `git diff BRANCH...HEAD` for `baseBranch`, `git show SHA`
for `commit`, nothing for `custom` (its instructions are the task). Then one streamed
request, with no tools, asks the model for the review:

- system: `REVIEW_INSTRUCTION` (fixed, below);
- user: the task (Codex's wording for each target) followed by the change.

The answer streams no items (the server wraps the review in `enteredReviewMode` /
`exitedReviewMode`, whose `review` is the returned text). A target with nothing to review
(a clean working tree, an empty diff) is answered without a request; an empty answer
fails the turn.
"""

from __future__ import annotations

from typing import Any

from .base import TurnContext, TurnFailed
from .openai_git import Change, gather
from .openai_http import OpenAISettings, open_client, request_body, request_reply

REVIEW_INSTRUCTION = (
    "You are a careful code reviewer. Review the change you are given for correctness "
    "bugs, security problems, data loss, race conditions, missing error handling and "
    "unclear code, in that order of importance. Report prioritized findings: for each, "
    "the file and line, what is wrong, why it matters and how to fix it. Do not restate "
    "the change and do not praise it; if you find no real problem, say so in one "
    "sentence. Write only the review."
)
NOTHING_TO_REVIEW = "Nothing to review: {what} has no changes."


def review_prompt(change: Change) -> str:
    if not change.diff:
        return change.task
    return f"{change.task}\n\nThe change:\n\n```diff\n{change.diff}\n```"


async def review_change(ctx: TurnContext, settings: OpenAISettings, target: dict[str, Any]) -> str:
    """The model's review of the change `target` names in `ctx.cwd`."""
    change = await gather(ctx.cwd, target)
    if not change.diff and target.get("type") != "custom":
        return NOTHING_TO_REVIEW.format(what=_what(target))
    request = [
        {"role": "system", "content": REVIEW_INSTRUCTION},
        {"role": "user", "content": review_prompt(change)},
    ]
    body = request_body(settings, ctx.model or settings.model, request)
    async with open_client(settings) as client:
        reply = await request_reply(ctx, client, settings, body, emit=False)
    review = reply.text.strip()
    if not review:
        raise TurnFailed("the model answered the review request with an empty review")
    return review


def _what(target: dict[str, Any]) -> str:
    kind = target.get("type")
    if kind == "baseBranch":
        return f"HEAD against the base branch {target.get('branch')!r}"
    if kind == "commit":
        return f"commit {target.get('sha')}"
    return "the working tree"
