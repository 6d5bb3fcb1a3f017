"""Approval rules of the builtin agent (PROTOCOL.md §7.1, §7.3), shared by /run and /write."""

from __future__ import annotations

import enum
from typing import Any

from .base import ApprovalKind, TurnContext


class Verdict(enum.Enum):
    """What the agent does with an item after asking (or not needing to ask)."""

    PROCEED = "proceed"  # accept / acceptForSession / not asked
    DECLINED = "declined"  # decline (or an unknown answer): item `declined`, agent goes on
    CANCELLED = "cancelled"  # cancel: item `declined`, then the turn ends `interrupted`
    FAILED = "failed"  # JSON-RPC error answer: item `failed`, agent goes on

    @property
    def item_status(self) -> str:
        """The status an item ends with when this verdict stops it."""
        return "failed" if self is Verdict.FAILED else "declined"


def command_needs_approval(ctx: TurnContext) -> bool:
    """Every command is asked for unless the policy is `never`; under sandbox `read-only`
    always."""
    return ctx.approval_policy != "never" or ctx.sandbox == "read-only"


def write_needs_approval(ctx: TurnContext) -> bool:
    """Every file write is asked for unless the policy is `never` (sandbox rules that refuse
    a write outright are applied before this)."""
    return ctx.approval_policy != "never"


def session_approvals_apply(ctx: TurnContext) -> bool:
    """`acceptForSession` grants are used and kept except under sandbox `read-only`, where
    every command needs its own approval (§7.3)."""
    return ctx.sandbox != "read-only"


def command_session_key(command: str) -> str:
    return f"commandExecution:{command}"


def file_session_key(path: str) -> str:
    return f"fileChange:{path}"


async def seek_approval(
    ctx: TurnContext, kind: ApprovalKind, params: dict[str, Any], session_key: str
) -> Verdict:
    """Ask the thread's subscribers unless `session_key` was already approved for the
    session; remember it when the answer is `acceptForSession`. Under sandbox `read-only`
    session approvals never apply (§7.3): an earlier grant is not consulted, and
    `acceptForSession` counts as `accept` without being remembered."""
    sessions_apply = session_approvals_apply(ctx)
    if sessions_apply and session_key in ctx.session_approvals:
        return Verdict.PROCEED
    decision = await ctx.request_approval(kind, params)
    if decision == "acceptForSession":
        if sessions_apply:
            ctx.session_approvals.add(session_key)
        return Verdict.PROCEED
    if decision == "accept":
        return Verdict.PROCEED
    if decision == "cancel":
        return Verdict.CANCELLED
    if decision == "error":
        return Verdict.FAILED
    return Verdict.DECLINED
