"""Params: attrs classes for every params object a client may send (results,
notifications and objects are in the sibling modules; policies in `policies`). Python
names are snake_case; the converter renames them to camelCase (except the few snake_case
wire fields of PROTOCOL.md §4).
"""

from __future__ import annotations

import uuid
from typing import Any, Final, Literal

import attrs

from appserver.protocol.converter import WireTypeError, converter, type_name
from appserver.protocol.errors import InvalidParams
from appserver.protocol.policies import (
    ApprovalPolicy,
    ApprovalsReviewer,
    SandboxMode,
    SandboxPolicy,
)
from appserver.protocol.wire import any_json, register_tagged_union

Personality = Literal["none", "friendly", "pragmatic"]
ReasoningSummary = Literal["auto", "concise", "detailed", "none"]
SortKey = Literal["created_at", "updated_at", "recency_at", "section_position"]


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
    # appserver extension (PROTOCOL.md §13): numbered events, thread/resume afterSeq.
    appserver_event_seq: bool = False
    # Accepted and ignored: appserver hosts no MCP servers, gateway or attestation.
    explicit_gateway_oauth: bool | None = None
    extensions: dict[str, Any] | None = None
    mcp_server_openai_form_elicitation: bool | None = None
    request_attestation: bool | None = None
    required_human_approval: bool | None = None


@attrs.frozen(kw_only=True)
class InitializeParams:
    client_info: ClientInfo
    capabilities: InitializeCapabilities | None = None


@attrs.frozen(kw_only=True)
class Empty:
    """Params of methods that take none (and any extra fields, which are ignored)."""


# --- user input (§4.4) -----------------------------------------------------------------


# Every UserInput kind of Codex 0.171. The builtin agent reads only text; the others are
# stored and echoed back as given (optional fields sent as null are left out).


@attrs.frozen(kw_only=True)
class ByteRange:
    start: int
    end: int


@attrs.frozen(kw_only=True)
class TextElement:
    byte_range: ByteRange
    placeholder: str | None = None


@attrs.frozen(kw_only=True)
class TextInput:
    type: Literal["text"]
    text: str
    text_elements: list[TextElement] = attrs.Factory(list)


ImageDetail = Literal["auto", "low", "high", "original"]


def _url_or_file_id(instance: Any, _: Any, value: str | None) -> None:
    if (instance.url is None) == (value is None):
        raise WireTypeError("needs exactly one of url and fileId")


@attrs.frozen(kw_only=True)
class ImageInput:
    type: Literal["image"]
    url: str | None = None
    file_id: str | None = attrs.field(default=None, validator=_url_or_file_id)
    detail: ImageDetail | None = None


@attrs.frozen(kw_only=True)
class LocalImageInput:
    type: Literal["localImage"]
    path: str
    detail: ImageDetail | None = None


@attrs.frozen(kw_only=True)
class AudioInput:
    type: Literal["audio"]
    url: str | None = None
    file_id: str | None = attrs.field(default=None, validator=_url_or_file_id)


@attrs.frozen(kw_only=True)
class LocalAudioInput:
    type: Literal["localAudio"]
    path: str


@attrs.frozen(kw_only=True)
class SkillInput:
    type: Literal["skill"]
    name: str
    path: str


@attrs.frozen(kw_only=True)
class MentionInput:
    type: Literal["mention"]
    name: str
    path: str


UserInput = (
    TextInput
    | ImageInput
    | LocalImageInput
    | AudioInput
    | LocalAudioInput
    | SkillInput
    | MentionInput
)
USER_INPUT_TYPES: dict[str, type[UserInput]] = {
    "text": TextInput,
    "image": ImageInput,
    "localImage": LocalImageInput,
    "audio": AudioInput,
    "localAudio": LocalAudioInput,
    "skill": SkillInput,
    "mention": MentionInput,
}


# --- threads (§5) ----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ThreadSettingsParams:
    """The optional settings shared by thread/start and thread/resume."""

    model: str | None = None
    model_provider: str | None = None
    cwd: str | None = None
    approval_policy: ApprovalPolicy | None = None
    sandbox: SandboxMode | None = None
    # With no reviewer agent in appserver, every value routes requests to the user (§12).
    approvals_reviewer: ApprovalsReviewer | None = None
    base_instructions: str | None = None
    developer_instructions: str | None = None
    config: dict[str, Any] | None = None
    # Accepted and ignored: appserver has no personalities and no service tiers.
    personality: Personality | None = None
    service_tier: str | None = None


# --- dynamic tools (thread/start `dynamicTools`, experimental in 0.171) ----------------


@attrs.frozen(kw_only=True)
class FunctionDynamicToolSpec:
    """A tool the client runs (`item/tool/call`); also a member of a namespace."""

    type: Literal["function"]
    name: str
    description: str
    input_schema: Any = attrs.field(default=None, metadata=any_json(required=True))
    defer_loading: bool | None = None


@attrs.frozen(kw_only=True)
class NamespaceDynamicToolSpec:
    type: Literal["namespace"]
    name: str
    description: str
    tools: list[FunctionDynamicToolSpec]


DynamicToolSpec = FunctionDynamicToolSpec | NamespaceDynamicToolSpec
register_tagged_union(DynamicToolSpec)


@attrs.frozen(kw_only=True)
class ThreadStartParams(ThreadSettingsParams):
    ephemeral: bool = False
    # Stored with the thread's settings as given (agents see them as ctx.dynamic_tools);
    # experimental in 0.171 (protocol/experimental.py).
    dynamic_tools: list[DynamicToolSpec] | None = None
    thread_source: str | None = None  # stored; reported as Thread.threadSource
    service_name: str | None = None  # accepted and ignored
    session_start_source: Literal["startup", "clear"] | None = None  # accepted and ignored


@attrs.frozen(kw_only=True)
class ThreadResumeParams(ThreadSettingsParams):
    thread_id: str
    exclude_turns: bool = False
    # appserver extension (PROTOCOL.md §13; protocol/replay_types.py): replay after it.
    after_seq: int | None = None


@attrs.frozen(kw_only=True)
class ThreadIdParams:
    thread_id: str


@attrs.frozen(kw_only=True)
class ThreadReadParams:
    thread_id: str
    include_turns: bool = False


SortDirection = Literal["asc", "desc"]
ThreadSourceKind = Literal[
    "cli",
    "vscode",
    "exec",
    "appServer",
    "subAgent",
    "subAgentReview",
    "subAgentCompact",
    "subAgentThreadSpawn",
    "subAgentOther",
    "unknown",
]
ThreadListCwdFilter = str | list[str]
# Every appserver thread was started over the app-server: Codex 0.171 gives such threads
# the source kind `vscode`, and appserver's Thread.source says `appServer`. A
# `sourceKinds` filter naming either lists them; any other filter lists none.
APP_SERVER_SOURCE_KINDS: Final[frozenset[str]] = frozenset({"vscode", "appServer"})
MAX_LISTED_THREAD_IDS: Final = 100


def _structure_cwd_filter(value: Any, _: Any) -> str | list[str]:
    if type(value) is str:
        return converter.structure(value, str)
    if type(value) is list:
        for index, item in enumerate(value):
            if type(item) is not str:
                raise WireTypeError(f"item {index}: expected a string, got {type_name(item)}")
        return [converter.structure(item, str) for item in value]
    raise WireTypeError(f"expected a string or an array of strings, got {type_name(value)}")


converter.register_structure_hook_func(
    lambda tp: tp == ThreadListCwdFilter or tp == ThreadListCwdFilter | None,
    _structure_cwd_filter,
)


@attrs.frozen(kw_only=True)
class ThreadListParams:
    """thread/list (§5.4). ``archived``, ``cwd``, ``searchTerm``, ``modelProviders``,
    the thread id lists and both sort fields filter and order as Codex 0.171 does;
    ``sourceKinds`` / ``sectionId`` are mapped (see the handler); ``originators``
    non-empty is refused as the local Codex app-server refuses it;
    ``currentAccountOnly`` / ``useStateDbOnly`` have nothing to act on (no accounts, one
    store) and are ignored."""

    cursor: str | None = None
    limit: int | None = None
    sort_key: SortKey = "created_at"
    sort_direction: SortDirection = "desc"
    archived: bool = False
    cwd: ThreadListCwdFilter | None = None
    search_term: str | None = None
    model_providers: list[str] = attrs.Factory(list)
    source_kinds: list[ThreadSourceKind] = attrs.Factory(list)
    included_thread_ids: list[str] | None = None
    excluded_thread_ids: list[str] = attrs.Factory(list)
    originators: list[str] = attrs.Factory(list)
    section_id: str | None = None
    current_account_only: bool = False
    use_state_db_only: bool = False

    def thread_ids(self, field: Literal["included", "excluded"]) -> tuple[str, ...] | None:
        """``includedThreadIds`` / ``excludedThreadIds`` as canonical ids (lower-case
        hyphenated, as Codex parses them: braces, ``urn:uuid:`` and no hyphens are
        accepted); InvalidParams naming the field for a bad id or more than 100."""
        values = self.included_thread_ids if field == "included" else self.excluded_thread_ids
        if values is None:
            return None
        name = f"{field}ThreadIds"
        if len(values) > MAX_LISTED_THREAD_IDS:
            message = f"{name} accepts at most {MAX_LISTED_THREAD_IDS} entries"
            raise InvalidParams(message, errors=[{"path": name, "message": message}])
        ids: list[str] = []
        for index, value in enumerate(values):
            try:
                ids.append(str(uuid.UUID(value)))
            except ValueError:
                message = f"invalid {field} thread id: {value!r}"  # the reference's words
                path = f"{name}[{index}]"
                raise InvalidParams(message, errors=[{"path": path, "message": message}]) from None
        return tuple(ids)

    def lists_nothing(self) -> bool:
        """Whether the section or source filter excludes every appserver thread: no
        thread is in a section (appserver has none), and every thread's source is the
        app-server (see ``APP_SERVER_SOURCE_KINDS``)."""
        if self.section_id is not None:
            return True
        return bool(self.source_kinds) and APP_SERVER_SOURCE_KINDS.isdisjoint(self.source_kinds)


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
    sandbox_policy: SandboxPolicy | None = None
    model: str | None = None
    client_user_message_id: str | None = None  # the userMessage item's clientId
    # Accepted; appserver's agents have no use for them (the routing of every approval
    # goes to the user, §12).
    approvals_reviewer: ApprovalsReviewer | None = None
    disabled_plugin_ids: list[str] | None = None
    effort: str | None = None
    output_schema: Any = None
    parent_turn_id: str | None = None
    personality: Personality | None = None
    root_turn_id: str | None = None
    service_tier: str | None = None
    service_tier_for_turn: str | None = None
    summary: ReasoningSummary | None = None
    tool_output: dict[str, Any] | None = None
    turn_trigger: Any = None


@attrs.frozen(kw_only=True)
class TurnInterruptParams:
    thread_id: str
    turn_id: str


# --- approvals (§7.1): what a client answers -------------------------------------------

Decision = Literal["accept", "acceptForSession", "decline", "cancel"]


def _structure_user_input(value: Any, _: Any) -> UserInput:
    if type(value) is not dict:
        raise WireTypeError(f"expected an object, got {type_name(value)}")
    kind = value.get("type")
    cls = USER_INPUT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        allowed = ", ".join(repr(k) for k in USER_INPUT_TYPES)
        raise WireTypeError(f"unknown input type {kind!r}; expected one of {allowed}")
    return converter.structure(value, cls)


converter.register_structure_hook(UserInput, _structure_user_input)
