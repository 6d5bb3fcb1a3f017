"""Wire types: attrs classes for every params object a client may send, and for the
results the server answers with. Python names are snake_case; the converter renames them
to camelCase (except the few snake_case wire fields of PROTOCOL.md §4).

Items, turns and threads that the server emits are built as plain dicts (see
`appserver.protocol.objects`): they are produced on the hot path and stored verbatim.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from appserver.protocol.converter import WireTypeError, converter, type_name

ApprovalPolicy = Literal["untrusted", "on-failure", "on-request", "never"]
SandboxMode = Literal["read-only", "workspace-write", "danger-full-access"]
SortKey = Literal["created_at", "updated_at"]


# --- initialize (§3) -------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ClientInfo:
    name: str
    version: str
    title: str | None = None


@attrs.frozen(kw_only=True)
class InitializeCapabilities:
    experimental_api: bool = False
    opt_out_notification_methods: list[str] = attrs.Factory(list)


@attrs.frozen(kw_only=True)
class InitializeParams:
    client_info: ClientInfo
    capabilities: InitializeCapabilities | None = None


@attrs.frozen(kw_only=True)
class InitializeResult:
    user_agent: str
    codex_home: str
    platform_family: str
    platform_os: str


@attrs.frozen(kw_only=True)
class Empty:
    """Params of methods that take none (and any extra fields, which are ignored)."""


# --- user input (§4.4) -----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class TextInput:
    type: Literal["text"]
    text: str
    text_elements: list[Any] = attrs.Factory(list)


@attrs.frozen(kw_only=True)
class ImageInput:
    type: Literal["image"]
    url: str


@attrs.frozen(kw_only=True)
class LocalImageInput:
    type: Literal["localImage"]
    path: str


UserInput = TextInput | ImageInput | LocalImageInput
USER_INPUT_TYPES: dict[str, type[TextInput | ImageInput | LocalImageInput]] = {
    "text": TextInput,
    "image": ImageInput,
    "localImage": LocalImageInput,
}


@attrs.frozen(kw_only=True)
class SandboxPolicyParam:
    type: Literal["readOnly", "workspaceWrite", "dangerFullAccess"]
    writable_roots: list[str] | None = None
    network_access: bool | None = None


# --- threads (§5) ----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ThreadSettingsParams:
    """The optional settings shared by thread/start and thread/resume."""

    model: str | None = None
    model_provider: str | None = None
    cwd: str | None = None
    approval_policy: ApprovalPolicy | None = None
    sandbox: SandboxMode | None = None
    approvals_reviewer: Literal["user"] | None = None
    base_instructions: str | None = None
    developer_instructions: str | None = None
    config: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class ThreadStartParams(ThreadSettingsParams):
    ephemeral: bool = False


@attrs.frozen(kw_only=True)
class ThreadResumeParams(ThreadSettingsParams):
    thread_id: str


@attrs.frozen(kw_only=True)
class ThreadIdParams:
    thread_id: str


@attrs.frozen(kw_only=True)
class ThreadReadParams:
    thread_id: str
    include_turns: bool = False


@attrs.frozen(kw_only=True)
class ThreadListParams:
    cursor: str | None = None
    limit: int | None = None
    sort_key: SortKey = "created_at"
    archived: bool = False
    cwd: str | None = None
    search_term: str | None = None
    model_providers: list[str] = attrs.Factory(list)
    source_kinds: Any = None


@attrs.frozen(kw_only=True)
class ThreadLoadedListParams:
    cursor: str | None = None
    limit: int | None = None


@attrs.frozen(kw_only=True)
class ThreadSetNameParams:
    thread_id: str
    name: str


# --- turns (§5.9, §5.10) ---------------------------------------------------------------


@attrs.frozen(kw_only=True)
class TurnStartParams:
    thread_id: str
    input: list[UserInput]
    cwd: str | None = None
    approval_policy: ApprovalPolicy | None = None
    sandbox_policy: SandboxPolicyParam | None = None
    model: str | None = None


@attrs.frozen(kw_only=True)
class TurnInterruptParams:
    thread_id: str
    turn_id: str


# --- approvals (§7.1): what a client answers -------------------------------------------

Decision = Literal["accept", "acceptForSession", "decline", "cancel"]


def _structure_user_input(value: Any, _: Any) -> TextInput | ImageInput | LocalImageInput:
    if type(value) is not dict:
        raise WireTypeError(f"expected an object, got {type_name(value)}")
    kind = value.get("type")
    cls = USER_INPUT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        allowed = ", ".join(repr(k) for k in USER_INPUT_TYPES)
        raise WireTypeError(f"unknown input type {kind!r}; expected one of {allowed}")
    return converter.structure(value, cls)


converter.register_structure_hook(UserInput, _structure_user_input)
