"""What a review is made of, for every backend (review/start, the builtin `/review`).

A review target is the wire ReviewTarget (`uncommittedChanges`, `baseBranch`, `commit`,
`custom`). Its label and its prompt are the reference's (Codex 0.171):

- uncommittedChanges: label `current changes`; prompt `Review the current code changes
  (staged, unstaged, and untracked files) and provide prioritized findings.`
- baseBranch B: label `changes against 'B'`; prompt `Review the code changes against the
  base branch 'B'. The merge base commit for this comparison is M. Run `git diff M` to
  inspect the changes relative to B. Provide prioritized, actionable findings.` where M is
  `git merge-base HEAD B` in the cwd (without one, the prompt asks to find it).
- commit S (title T): label `commit S7: T`, or `commit S7` untitled (S7: the first seven
  characters of S); prompt `Review the code changes introduced by commit S ("T"). Provide
  prioritized, actionable findings.` (without ` ("T")` untitled).
- custom I: label and prompt I (trimmed).

`emit_review` wraps a backend's review work in the review items, in order:
`enteredReviewMode` (the label), the prompt's `userMessage` (review/start only), whatever
the work emits, `exitedReviewMode` (the review text the work returned) and an
`agentMessage` with that text (one delta).
"""

from __future__ import annotations

import subprocess
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from .base import TurnContext, agent_message_item

FINDINGS = "Provide prioritized, actionable findings."
UNCOMMITTED_PROMPT = (
    "Review the current code changes (staged, unstaged, and untracked files) and provide "
    "prioritized findings."
)
MERGE_BASE_TIMEOUT = 5.0


def review_label(target: dict[str, Any]) -> str:
    kind = target.get("type")
    if kind == "baseBranch":
        return f"changes against '{target['branch']}'"
    if kind == "commit":
        title = target.get("title")
        short = f"commit {str(target['sha'])[:7]}"
        return f"{short}: {title}" if title else short
    if kind == "custom":
        return str(target["instructions"]).strip()
    return "current changes"


async def review_prompt(target: dict[str, Any], cwd: str) -> str:
    kind = target.get("type")
    if kind == "baseBranch":
        branch = target["branch"]
        base = await merge_base(cwd, branch)
        if base is None:
            return (
                f"Review the code changes against the base branch '{branch}'. Find the "
                f"merge base of the current branch and {branch} (`git merge-base HEAD "
                f"{branch}`), then run `git diff` against it to inspect the changes "
                f"relative to {branch}. {FINDINGS}"
            )
        return (
            f"Review the code changes against the base branch '{branch}'. The merge base "
            f"commit for this comparison is {base}. Run `git diff {base}` to inspect the "
            f"changes relative to {branch}. {FINDINGS}"
        )
    if kind == "commit":
        title = target.get("title")
        named = f' ("{title}")' if title else ""
        return f"Review the code changes introduced by commit {target['sha']}{named}. {FINDINGS}"
    if kind == "custom":
        return str(target["instructions"]).strip()
    return UNCOMMITTED_PROMPT


async def merge_base(cwd: str, branch: str) -> str | None:
    """`git merge-base HEAD BRANCH` in `cwd`, or None (no git, no repository, no branch)."""
    with trio.move_on_after(MERGE_BASE_TIMEOUT):
        try:
            done = await trio.run_process(
                ["git", "merge-base", "HEAD", branch],
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        except OSError:
            return None
        sha = done.stdout.decode("ascii", "replace").strip()
        return sha if done.returncode == 0 and sha else None
    return None


async def emit_item(ctx: TurnContext, item: dict[str, Any]) -> None:
    """An item that is complete when it starts (no deltas)."""
    await ctx.item_started(item)
    await ctx.item_completed(item)


async def emit_review(
    ctx: TurnContext,
    target: dict[str, Any],
    work: Callable[[], Awaitable[str]],
    *,
    with_prompt: bool,
) -> str:
    """The review items around `work` (see the module doc); returns the review text."""
    await emit_item(
        ctx, {"type": "enteredReviewMode", "id": ctx.new_item_id(), "review": review_label(target)}
    )
    if with_prompt:
        prompt = await review_prompt(target, ctx.cwd)
        text = {"type": "text", "text": prompt, "text_elements": []}
        user = {"type": "userMessage", "id": ctx.new_item_id(), "clientId": None}
        await emit_item(ctx, {**user, "content": [text]})
    review = await work()
    await emit_item(ctx, {"type": "exitedReviewMode", "id": ctx.new_item_id(), "review": review})
    message_id = ctx.new_item_id()
    await ctx.item_started(agent_message_item(message_id, ""))
    if review:
        await ctx.agent_message_delta(message_id, review)
    await ctx.item_completed(agent_message_item(message_id, review))
    return review
