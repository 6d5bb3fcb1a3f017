"""Methods of Codex 0.171 (stable and experimental) that belong to Codex's own product and
that appserver does not host. They answer `-32601` with a message naming the feature,
e.g. `Method not found: plugin/list (appserver does not host Codex plugins)`, so a
client can tell "not here, by design" from "not built yet" (a plain `Method not found:
X`). A method appserver may still build (thread/fork, turn/steer, fs/*, command/exec,
...) is not listed here.

This module imports nothing of the protocol's tables: the sans-IO codec, which
transports use, reads it to word its -32601 answers.
"""

from __future__ import annotations

from appserver.protocol.errors import MethodNotFound

_FEATURES: dict[str, tuple[str, ...]] = {
    "Codex plugins": (
        "plugin/list",
        "plugin/search",
        "plugin/installed",
        "plugin/reconcile",
        "plugin/read",
        "plugin/skill/read",
        "plugin/share/save",
        "plugin/share/updateTargets",
        "plugin/share/list",
        "plugin/share/checkout",
        "plugin/share/delete",
        "plugin/install",
        "plugin/uninstall",
    ),
    "the Codex plugin marketplace": (
        "marketplace/add",
        "marketplace/remove",
        "marketplace/upgrade",
    ),
    "Codex skills": ("skills/list", "skills/extraRoots/set", "skills/config/write"),
    "Codex hooks": ("hooks/list",),
    "Codex apps": ("app/read", "app/list", "app/installed"),
    "Codex MCP servers": (
        "mcpServer/oauth/login",
        "config/mcpServer/reload",
        "mcpServerStatus/list",
        "mcpServer/resource/read",
        "mcpServer/tool/call",
        "mcpServer/event/stream/start",
        "mcpServer/event/stream/stop",
    ),
    "Codex account login": (
        "account/login/start",
        "account/login/cancel",
        "account/logout",
        "account/gatewayOAuth/read",
        "account/gatewayOAuth/login",
        "account/gatewayOAuth/cancel",
        "account/securitySetup/read",
        "account/bedrock/discover",
        "account/bedrock/setup",
        "account/bedrock/checkGovCloudRequirements",
        "account/gcp/setup",
        "accountSession/list",
        "accountSession/switch",
        "userVerification/status",
        "userVerification/enroll",
        "userVerification/delete",
        "userVerification/verify",
        "userVerification/cancel",
    ),
    "Codex account rate limits and usage": (
        "account/rateLimits/read",
        "account/rateLimitResetCredit/consume",
        "account/usage/read",
        "account/workspaceMessages/read",
        "account/sendAddCreditsNudgeEmail",
    ),
    "Codex feedback": ("feedback/upload", "feedback/save"),
    "the Codex Windows sandbox": ("windowsSandbox/setupStart", "windowsSandbox/readiness"),
    "Codex remote control": (
        "remoteControl/enable",
        "remoteControl/disable",
        "remoteControl/status/read",
        "remoteControl/pairing/start",
        "remoteControl/pairing/status",
        "remoteControl/client/list",
        "remoteControl/client/revoke",
    ),
    "Codex goals": ("thread/goal/set", "thread/goal/get", "thread/goal/clear"),
    "Codex thread sections": (
        "thread/section/move",
        "threadSection/list",
        "threadSection/create",
        "threadSection/update",
        "threadSection/delete",
    ),
    "Codex attachments": (
        "thread/attachment/add",
        "thread/attachment/list",
        "thread/attachment/remove",
        "thread/attachmentOwner/list",
    ),
    "Codex realtime": (
        "thread/realtime/start",
        "thread/realtime/appendAudio",
        "thread/realtime/appendText",
        "thread/realtime/appendSpeech",
        "thread/realtime/stop",
        "thread/realtime/list",
        "thread/realtime/listVoices",
    ),
    "Codex projects": (
        "project/list",
        "project/read",
        "project/create",
        "project/import",
        "project/update",
        "project/move",
        "project/delete",
    ),
    "Codex memories": (
        "thread/memoryMode/set",
        "thread/memory/read",
        "memory/status",
        "memory/reset",
    ),
    # appserver's settings come from its command line (or ServerConfig).
    "Codex configuration editing": (
        "config/value/write",
        "config/batchWrite",
        "modelProvider/config/write",
        "modelProvider/default/set",
        "experimentalFeature/enablement/set",
    ),
    "Codex managed configuration requirements": ("configRequirements/read",),
    "Codex's import of other agents' configuration": (
        "externalAgentConfig/detect",
        "externalAgentConfig/import",
        "externalAgentConfig/import/recordHistory",
        "externalAgentConfig/import/readHistories",
    ),
    "Codex permission profiles": ("permissionProfile/list",),
    # With no reviewer agent, approval requests go to the user (PROTOCOL.md §12).
    "the Codex guardian reviewer": (
        "thread/approveGuardianDeniedAction",
        "thread/guardianReview",
    ),
    "Codex collaboration modes": ("collaborationMode/list",),
    "Codex remote environments": ("environment/add", "environment/info", "environment/status"),
    "the deprecated Codex v1 API": ("getConversationSummary", "gitDiffToRemote", "getAuthStatus"),
}

# method -> the Codex feature it belongs to, as the error message names it.
NOT_HOSTED: dict[str, str] = {
    method: feature for feature, methods in _FEATURES.items() for method in methods
}


def method_not_found(method: str) -> MethodNotFound:
    """The -32601 for a method appserver does not offer: naming the Codex feature when
    appserver does not host it, plain otherwise."""
    feature = NOT_HOSTED.get(method)
    if feature is None:
        return MethodNotFound(f"Method not found: {method}")
    return MethodNotFound(f"Method not found: {method} (appserver does not host {feature})")
