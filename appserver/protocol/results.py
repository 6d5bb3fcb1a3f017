"""Results of the client→server methods (PROTOCOL.md §3, §5), as Codex 0.171 has them.

`RESULTS` maps every method name of the METHODS table to its result type; `WIRE_NAMES`
gives the Codex schema name stem of a method where it is not its parts capitalised
(`thread/name/set` -> `ThreadSetName`), so the export writes `v2/ThreadSetNameParams.json`
and `v2/ThreadSetNameResponse.json` as the reference does.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from appserver.protocol import command_types as ct
from appserver.protocol import fs_types as fst
from appserver.protocol import lifecycle_types as lct
from appserver.protocol import paging_types as pgt
from appserver.protocol import search_types as search
from appserver.protocol import special_types as sp
from appserver.protocol import steer_types as steer
from appserver.protocol.objects import Thread, Turn
from appserver.protocol.policies import ApprovalsReviewer, AskForApproval, SandboxPolicy
from appserver.protocol.replay_types import Replay
from appserver.protocol.wire import Empty, any_json, nullable, register_tagged_union

# --- initialize (§3) -------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ServerInfo:
    name: str
    version: str


@attrs.frozen(kw_only=True)
class InitializeResponse:
    user_agent: str
    codex_home: str
    platform_family: str
    platform_os: str
    server_info: ServerInfo


# --- threads and turns (§5) ------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ThreadStartResponse:
    """The result of thread/start (§5.1); thread/resume adds the backwards cursors."""

    thread: Thread
    model: str
    model_provider: str
    service_tier: str | None = None
    cwd: str
    approval_policy: AskForApproval
    approvals_reviewer: ApprovalsReviewer
    sandbox: SandboxPolicy
    reasoning_effort: str | None = None
    instruction_sources: list[str] | None = None
    disabled_plugin_ids: list[str] | None = None


@attrs.frozen(kw_only=True)
class ThreadResumeResponse(ThreadStartResponse):
    turns_backwards_cursor: str | None = None
    items_backwards_cursor: str | None = None
    # appserver extension (PROTOCOL.md §13): present when the request had afterSeq.
    replay: Replay | None = None


@attrs.frozen(kw_only=True)
class ThreadResponse:
    """`{thread}`: the result of thread/read and thread/unarchive."""

    thread: Thread


@attrs.frozen(kw_only=True)
class ThreadListResponse:
    data: list[Thread]
    next_cursor: str | None = None
    backwards_cursor: str | None = None


@attrs.frozen(kw_only=True)
class ThreadLoadedListResponse:
    data: list[str]
    next_cursor: str | None = None


@attrs.frozen(kw_only=True)
class ThreadUnsubscribeResponse:
    status: Literal["notLoaded", "notSubscribed", "unsubscribed"]


@attrs.frozen(kw_only=True)
class TurnStartResponse:
    turn: Turn


# --- account, configuration, models, features ------------------------------------------


@attrs.frozen(kw_only=True)
class ApiKeyAccount:
    type: Literal["apiKey"]


PlanType = Literal[
    "free", "go", "plus", "pro", "prolite", "promax", "team", "self_serve_business_prolite",
    "self_serve_business_usage_based", "business", "ent26", "enterprise_cbp_automation",
    "enterprise_cbp_usage_based", "enterprise", "edu", "edu_plus", "edu_pro", "sci",
    "sci_plus", "unknown",
]  # fmt: skip


@attrs.frozen(kw_only=True)
class ChatgptAccount:
    type: Literal["chatgpt"]
    email: str | None = nullable()
    plan_type: PlanType
    workspace_name: str | None = None


@attrs.frozen(kw_only=True)
class AmazonBedrockAccount:
    type: Literal["amazonBedrock"]
    uses_codex_managed_credentials: bool | None = None


@attrs.frozen(kw_only=True)
class GcpAccount:
    type: Literal["gcp"]


Account = ApiKeyAccount | ChatgptAccount | AmazonBedrockAccount | GcpAccount


@attrs.frozen(kw_only=True)
class GetAccountResponse:
    account: Account | None = None
    requires_openai_auth: bool
    user_id: str | None = None


@attrs.frozen(kw_only=True)
class ConfigLayerMetadata:
    name: Any = attrs.field(
        default=None, metadata=any_json(required=True)
    )  # a Codex ConfigLayerSource, not described here
    version: str


@attrs.frozen(kw_only=True)
class ConfigLayer:
    name: Any = attrs.field(
        default=None, metadata=any_json(required=True)
    )  # a Codex ConfigLayerSource, not described here
    version: str
    config: Any = attrs.field(default=None, metadata=any_json(required=True))
    disabled_reason: str | None = None


@attrs.frozen(kw_only=True)
class ConfigReadResponse:
    """`config` is Codex's config object, whose keys are snake_case (`model_provider`,
    `approval_policy`, ...): it is described as an object, not field by field."""

    config: dict[str, Any]
    origins: dict[str, ConfigLayerMetadata]
    layers: list[ConfigLayer] | None = None


@attrs.frozen(kw_only=True)
class ReasoningEffortOption:
    reasoning_effort: str
    description: str


@attrs.frozen(kw_only=True)
class ModelServiceTier:
    id: str
    name: str
    description: str


@attrs.frozen(kw_only=True)
class ModelUpgradeInfo:
    model: str
    migration_markdown: str | None = None
    model_link: str | None = None
    retirement_at: int | None = None
    upgrade_copy: str | None = None


@attrs.frozen(kw_only=True)
class ModelAvailabilityNux:
    message: str


@attrs.frozen(kw_only=True)
class Model:
    id: str
    model: str
    display_name: str
    description: str
    hidden: bool
    is_default: bool
    default_reasoning_effort: str
    supported_reasoning_efforts: list[ReasoningEffortOption]
    input_modalities: list[Literal["text", "image", "audio"]] | None = None
    additional_speed_tiers: list[str] | None = None
    service_tiers: list[ModelServiceTier] | None = None
    default_service_tier: str | None = None
    model_specialty: str | None = None
    multi_agent_version: Literal["disabled", "v1", "v2"] | None = None
    supports_personality: bool | None = None
    upgrade: str | None = None
    upgrade_info: ModelUpgradeInfo | None = None
    availability_nux: ModelAvailabilityNux | None = None
    available_access_programs: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class ModelListResponse:
    data: list[Model]
    next_cursor: str | None = None


@attrs.frozen(kw_only=True)
class OpenaiProviderSettings:
    type: Literal["openai"]


@attrs.frozen(kw_only=True)
class CustomGatewayProviderSettings:
    type: Literal["customGateway"]
    auth: Any = attrs.field(
        default=None, metadata=any_json(required=True)
    )  # a Codex GatewayAuth, not described here


@attrs.frozen(kw_only=True)
class BedrockProviderSettings:
    type: Literal["bedrock"]
    profile: str | None = None
    region: str | None = None


@attrs.frozen(kw_only=True)
class GcpProviderSettings:
    type: Literal["gcp"]
    credential_file: str | None = None
    location: str | None = None
    project_id: str | None = None


ProviderSettings = (
    OpenaiProviderSettings
    | CustomGatewayProviderSettings
    | BedrockProviderSettings
    | GcpProviderSettings
)


@attrs.frozen(kw_only=True)
class ModelProviderSummary:
    id: str
    name: str
    can_edit: bool
    settings: ProviderSettings
    base_url: str | None = None


@attrs.frozen(kw_only=True)
class ModelProviderListResponse:
    data: list[ModelProviderSummary]
    default_provider_id: str
    can_change_default: bool


@attrs.frozen(kw_only=True)
class ModelProviderCapabilitiesReadResponse:
    """What the default provider's models can do besides text: appserver's backends
    offer no image generation and no web search tool."""

    image_generation: bool
    web_search: bool


ExperimentalFeatureStage = Literal["beta", "underDevelopment", "stable", "deprecated", "removed"]


@attrs.frozen(kw_only=True)
class ExperimentalFeature:
    name: str
    stage: ExperimentalFeatureStage
    enabled: bool
    default_enabled: bool
    display_name: str | None = None
    description: str | None = None
    announcement: str | None = None


@attrs.frozen(kw_only=True)
class ExperimentalFeatureListResponse:
    data: list[ExperimentalFeature]
    next_cursor: str | None = None


register_tagged_union(Account)
register_tagged_union(ProviderSettings)

# method -> result type. Every method of the METHODS table must be here.
RESULTS: dict[str, type] = {
    "initialize": InitializeResponse,
    "thread/start": ThreadStartResponse,
    "thread/resume": ThreadResumeResponse,
    "thread/read": ThreadResponse,
    "thread/list": ThreadListResponse,
    "thread/loaded/list": ThreadLoadedListResponse,
    "thread/archive": Empty,
    "thread/unarchive": ThreadResponse,
    "thread/unsubscribe": ThreadUnsubscribeResponse,
    "thread/name/set": Empty,
    "turn/start": TurnStartResponse,
    "turn/interrupt": Empty,
    "account/read": GetAccountResponse,
    "config/read": ConfigReadResponse,
    "model/list": ModelListResponse,
    "modelProvider/list": ModelProviderListResponse,
    "modelProvider/capabilities/read": ModelProviderCapabilitiesReadResponse,
    "experimentalFeature/list": ExperimentalFeatureListResponse,
    # --- fs ---
    "fs/readFile": fst.FsReadFileResponse,
    "fs/writeFile": Empty,
    "fs/createDirectory": Empty,
    "fs/getMetadata": fst.FsGetMetadataResponse,
    "fs/readDirectory": fst.FsReadDirectoryResponse,
    "fs/remove": Empty,
    "fs/copy": Empty,
    "fs/watch": fst.FsWatchResponse,
    "fs/unwatch": Empty,
    # --- end of fs ---
    # --- command/exec ---
    "command/exec": ct.CommandExecResponse,
    "command/exec/write": Empty,
    "command/exec/terminate": Empty,
    "command/exec/resize": Empty,
    # --- end of command/exec ---
    # --- turn/steer ---
    "turn/steer": steer.TurnSteerResponse,
    # --- end of turn/steer ---
    # --- paging ---
    "thread/turns/list": pgt.ThreadTurnsListResponse,
    "thread/items/list": pgt.ThreadItemsListResponse,
    # --- end of paging ---
    # --- thread lifecycle ---
    "thread/fork": ThreadStartResponse,
    "thread/delete": Empty,
    "thread/revert": lct.ThreadRevertResponse,
    "thread/metadata/update": lct.ThreadMetadataUpdateResponse,
    "thread/inject_items": Empty,
    # --- end of thread lifecycle ---
    # --- special turns ---
    "thread/compact/start": Empty,
    "thread/shellCommand": Empty,
    "review/start": sp.ReviewStartResponse,
    # --- end of special turns ---
    # --- search ---
    "fuzzyFileSearch": search.FuzzyFileSearchResponse,
    # --- end of search ---
}

# Codex schema name stems that are not the method's parts capitalised and joined.
WIRE_NAMES: dict[str, str] = {
    "thread/name/set": "ThreadSetName",
    "account/read": "GetAccount",
    "thread/inject_items": "ThreadInjectItems",  # thread lifecycle
}

# Methods whose schemas live in `v1/` in the Codex layout (the rest are in `v2/`).
V1_METHODS = frozenset({"initialize"})
# Methods whose schemas sit at the top of the Codex layout, beside the envelopes.
TOP_LEVEL_METHODS = frozenset({"fuzzyFileSearch"})


def wire_name(method: str) -> str:
    """`thread/loaded/list` -> `ThreadLoadedList` (the Codex schema file naming)."""
    name = WIRE_NAMES.get(method)
    if name is not None:
        return name
    return "".join(part[:1].upper() + part[1:] for part in method.split("/"))
