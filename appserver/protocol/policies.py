"""Approval and sandbox policies (PROTOCOL.md §5.1, §7.3), described once for what
clients send (params) and what the server reports (results): Codex 0.171's AskForApproval,
ApprovalsReviewer, SandboxMode and SandboxPolicy."""

from __future__ import annotations

from typing import Any, Literal

import attrs

from appserver.protocol.wire import register_tagged_union, register_union

# What the server reports: Codex 0.171 names three policies.
AskForApproval = Literal["untrusted", "on-request", "never"]
# What a client may name: also `on-failure` (older Codex), which acts as `on-request`.
ApprovalPolicyName = Literal["untrusted", "on-failure", "on-request", "never"]
ApprovalsReviewer = Literal["user", "auto_review", "guardian_subagent"]
SandboxMode = Literal["read-only", "workspace-write", "danger-full-access"]


@attrs.frozen(kw_only=True)
class GranularApproval:
    mcp_elicitations: bool
    rules: bool
    sandbox_approval: bool
    request_permissions: bool = False
    skill_approval: bool = False


@attrs.frozen(kw_only=True)
class GranularApprovalPolicy:
    """`{"granular": {...}}` (experimental): per-category approvals. appserver has one
    category the builtin agent asks about (commands and writes), so it acts as, and is
    reported as, `on-request`."""

    granular: GranularApproval


ApprovalPolicy = ApprovalPolicyName | GranularApprovalPolicy


def _pick_approval_policy(value: Any) -> Any:
    return GranularApprovalPolicy if isinstance(value, dict) else ApprovalPolicyName


register_union(ApprovalPolicy, _pick_approval_policy)


@attrs.frozen(kw_only=True)
class ReadOnlySandboxPolicy:
    type: Literal["readOnly"]
    network_access: bool | None = None


@attrs.frozen(kw_only=True)
class WorkspaceWriteSandboxPolicy:
    type: Literal["workspaceWrite"]
    writable_roots: list[str] | None = None
    network_access: bool | None = None
    exclude_slash_tmp: bool | None = None
    exclude_tmpdir_env_var: bool | None = None


@attrs.frozen(kw_only=True)
class DangerFullAccessSandboxPolicy:
    type: Literal["dangerFullAccess"]


@attrs.frozen(kw_only=True)
class ExternalSandboxSandboxPolicy:
    type: Literal["externalSandbox"]
    network_access: Literal["restricted", "enabled"] | None = None


SandboxPolicy = (
    ReadOnlySandboxPolicy
    | WorkspaceWriteSandboxPolicy
    | DangerFullAccessSandboxPolicy
    | ExternalSandboxSandboxPolicy
)

register_tagged_union(SandboxPolicy)

__all__ = [
    "ApprovalPolicy",
    "ApprovalPolicyName",
    "ApprovalsReviewer",
    "AskForApproval",
    "GranularApproval",
    "GranularApprovalPolicy",
    "SandboxMode",
    "SandboxPolicy",
]
