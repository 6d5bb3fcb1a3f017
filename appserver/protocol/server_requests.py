"""Server→client requests (PROTOCOL.md §7) and the answers clients give, as Codex 0.171
has them. `SERVER_REQUESTS` maps each method to its Codex schema stem, params and result.

The answers are client input: their types accept every value the 0.171 schema allows
(an answer appserver cannot act on counts as `decline`, §7.1).
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from appserver.protocol.converter import WireTypeError, type_name
from appserver.protocol.items import CommandAction, DynamicToolCallOutputContentItem
from appserver.protocol.wire import any_json, register_union

# --- item/commandExecution/requestApproval ---------------------------------------------


@attrs.frozen(kw_only=True)
class NetworkApprovalContext:
    host: str
    protocol: Literal["http", "https", "socks5Tcp", "socks5Udp"]


@attrs.frozen(kw_only=True)
class NetworkPolicyAmendment:
    host: str
    action: Literal["allow", "deny"]


@attrs.frozen(kw_only=True)
class CommandExecutionRequestApprovalParams:
    thread_id: str
    turn_id: str
    item_id: str
    started_at_ms: int
    approval_id: str | None = None
    reason: str | None = None
    command: str | None = None
    cwd: str | None = None
    command_actions: list[CommandAction] | None = None
    kind: Literal["command", "writeStdin", "humanCommand"] | None = None
    environment_id: str | None = None
    network_approval_context: NetworkApprovalContext | None = None
    proposed_execpolicy_amendment: list[str] | None = None
    proposed_network_policy_amendments: list[NetworkPolicyAmendment] | None = None


# The members of these two decisions are snake_case on the wire (`execpolicy_amendment`,
# `network_policy_amendment`), which the converter does not keep: they are described by
# their JSON Schema and taken as given.
_EXECPOLICY_AMENDMENT = {
    "type": "object",
    "properties": {"execpolicy_amendment": {"type": "array", "items": {"type": "string"}}},
    "required": ["execpolicy_amendment"],
}
_NETWORK_AMENDMENT = {
    "type": "object",
    "properties": {
        "network_policy_amendment": {
            "type": "object",
            "properties": {
                "host": {"type": "string"},
                "action": {"type": "string", "enum": ["allow", "deny"]},
            },
            "required": ["action", "host"],
        }
    },
    "required": ["network_policy_amendment"],
}


@attrs.frozen(kw_only=True)
class AcceptWithExecpolicyAmendmentDecision:
    accept_with_execpolicy_amendment: Any = attrs.field(
        default=None, metadata=any_json(_EXECPOLICY_AMENDMENT, required=True)
    )


@attrs.frozen(kw_only=True)
class ApplyNetworkPolicyAmendmentDecision:
    apply_network_policy_amendment: Any = attrs.field(
        default=None, metadata=any_json(_NETWORK_AMENDMENT, required=True)
    )


SimpleDecision = Literal["accept", "acceptForSession", "decline", "cancel"]
CommandExecutionApprovalDecision = (
    SimpleDecision | AcceptWithExecpolicyAmendmentDecision | ApplyNetworkPolicyAmendmentDecision
)


@attrs.frozen(kw_only=True)
class CommandExecutionRequestApprovalResponse:
    decision: CommandExecutionApprovalDecision


# --- item/fileChange/requestApproval ---------------------------------------------------


@attrs.frozen(kw_only=True)
class FileChangeRequestApprovalParams:
    thread_id: str
    turn_id: str
    item_id: str
    started_at_ms: int
    reason: str | None = None
    grant_root: str | None = None


@attrs.frozen(kw_only=True)
class FileChangeRequestApprovalResponse:
    decision: SimpleDecision


def _pick_decision(value: Any) -> Any:
    if isinstance(value, str):
        return SimpleDecision
    if type(value) is dict and "acceptWithExecpolicyAmendment" in value:
        return AcceptWithExecpolicyAmendmentDecision
    if type(value) is dict and "applyNetworkPolicyAmendment" in value:
        return ApplyNetworkPolicyAmendmentDecision
    raise WireTypeError(f"expected a decision, got {type_name(value)}")


register_union(CommandExecutionApprovalDecision, _pick_decision)


# --- item/tool/requestUserInput (PROTOCOL.md §10 `/ask`) -------------------------------


@attrs.frozen(kw_only=True)
class ToolRequestUserInputOption:
    label: str
    description: str


@attrs.frozen(kw_only=True)
class ToolRequestUserInputQuestion:
    id: str
    header: str
    question: str
    is_other: bool = False
    is_secret: bool = False
    options: list[ToolRequestUserInputOption] | None = None


@attrs.frozen(kw_only=True)
class ToolRequestUserInputParams:
    thread_id: str
    turn_id: str
    item_id: str
    is_blocking: bool
    questions: list[ToolRequestUserInputQuestion]
    auto_resolution_ms: int | None = None  # deprecated in 0.171; always null, as there


@attrs.frozen(kw_only=True)
class ToolRequestUserInputAnswer:
    answers: list[str]


@attrs.frozen(kw_only=True)
class ToolRequestUserInputResponse:
    answers: dict[str, ToolRequestUserInputAnswer]


# --- item/tool/call (dynamic tools, PROTOCOL.md §10 `/tool`) ---------------------------


# Any JSON value, spelled out (so that the export test can sample it).
_ANY_VALUE = {"type": ["object", "array", "string", "number", "boolean", "null"]}


@attrs.frozen(kw_only=True)
class DynamicToolCallParams:
    thread_id: str
    turn_id: str
    call_id: str
    tool: str
    namespace: str | None = None
    arguments: Any = attrs.field(default=None, metadata=any_json(_ANY_VALUE, required=True))


@attrs.frozen(kw_only=True)
class DynamicToolCallResponse:
    content_items: list[DynamicToolCallOutputContentItem]
    success: bool


# --- item/permissions/requestApproval --------------------------------------------------

# The permission profiles are taken as given (agents build and read them).
_PROFILE = {"type": "object"}


@attrs.frozen(kw_only=True)
class PermissionsRequestApprovalParams:
    thread_id: str
    turn_id: str
    item_id: str
    started_at_ms: int
    cwd: str
    permissions: Any = attrs.field(default=None, metadata=any_json(_PROFILE, required=True))
    reason: str | None = None


@attrs.frozen(kw_only=True)
class PermissionsRequestApprovalResponse:
    permissions: Any = attrs.field(default=None, metadata=any_json(_PROFILE, required=True))
    scope: Literal["turn", "session"] = "turn"
    strict_auto_review: bool | None = None


@attrs.frozen(kw_only=True)
class ServerRequestSpec:
    name: str  # the Codex schema stem: `{name}Params.json`, `{name}Response.json`
    params: type
    result: type


SERVER_REQUESTS: dict[str, ServerRequestSpec] = {
    "item/commandExecution/requestApproval": ServerRequestSpec(
        name="CommandExecutionRequestApproval",
        params=CommandExecutionRequestApprovalParams,
        result=CommandExecutionRequestApprovalResponse,
    ),
    "item/fileChange/requestApproval": ServerRequestSpec(
        name="FileChangeRequestApproval",
        params=FileChangeRequestApprovalParams,
        result=FileChangeRequestApprovalResponse,
    ),
    "item/tool/requestUserInput": ServerRequestSpec(
        name="ToolRequestUserInput",
        params=ToolRequestUserInputParams,
        result=ToolRequestUserInputResponse,
    ),
    "item/tool/call": ServerRequestSpec(
        name="DynamicToolCall", params=DynamicToolCallParams, result=DynamicToolCallResponse
    ),
    "item/permissions/requestApproval": ServerRequestSpec(
        name="PermissionsRequestApproval",
        params=PermissionsRequestApprovalParams,
        result=PermissionsRequestApprovalResponse,
    ),
}
