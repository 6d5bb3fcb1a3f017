"""`config/read` and `experimentalFeature/list`: the server's effective settings in Codex
0.171's shapes. appserver's settings come from its command line (or `ServerConfig`), not
from Codex config layers, so there are no layers or origins to report, and none of Codex's
feature flags exists here."""

from __future__ import annotations

from typing import Any

from appserver.protocol import results as r
from appserver.protocol.settings_types import ConfigReadParams, ExperimentalFeatureListParams
from appserver.requests import RequestContext

from .common import Handler, Services, thread_id_of
from .models import page

# What a thread/start that names none of them gets (PROTOCOL.md §5.1).
DEFAULT_APPROVAL_POLICY = "on-request"
DEFAULT_SANDBOX_MODE = "workspace-write"


def effective_config(s: Services) -> dict[str, Any]:
    """Codex's `Config` object (snake_case keys) with appserver's values; null where
    appserver has no such setting."""
    provider = s.backends.default_provider
    return {
        "model": s.backends.default_model(provider),
        "review_model": None,
        "model_context_window": None,
        "model_auto_compact_token_limit": None,
        "model_auto_compact_token_limit_scope": None,
        "model_provider": provider,
        "approval_policy": DEFAULT_APPROVAL_POLICY,
        # With no reviewer agent, approval requests always go to the user (§12).
        "approvals_reviewer": "user",
        "sandbox_mode": DEFAULT_SANDBOX_MODE,
        "sandbox_workspace_write": None,
        "forced_chatgpt_workspace_id": None,
        "forced_login_method": None,
        # No agent of appserver searches the web.
        "web_search": "disabled",
        "client_search_provider": None,
        "tools": None,
        "instructions": None,
        "developer_instructions": None,
        "compact_prompt": None,
        "model_reasoning_effort": None,
        "model_reasoning_summary": None,
        "model_verbosity": None,
        "service_tier": None,
        # appserver sends no telemetry.
        "analytics": {"enabled": False},
        "browser_use": None,
        "computer_use": None,
        "desktop": None,
    }


async def config_read(s: Services, ctx: RequestContext, p: ConfigReadParams) -> dict[str, Any]:
    """A `ConfigReadResponse` (built as a dict: `config` keeps Codex's snake_case keys)."""
    # `cwd` would select Codex project layers; appserver's settings are the same anywhere.
    result: dict[str, Any] = {"config": effective_config(s), "origins": {}}
    if p.include_layers:  # as the reference: `layers` only when asked for
        result["layers"] = []
    return result


async def experimental_feature_list(
    s: Services, ctx: RequestContext, p: ExperimentalFeatureListParams
) -> r.ExperimentalFeatureListResponse:
    if p.thread_id is not None:
        thread_id = thread_id_of(p.thread_id)
        if s.registry.get(thread_id) is None:
            await s.stored(thread_id)
    features: list[r.ExperimentalFeature] = []  # none of Codex's feature flags exists here
    data, next_cursor = page(features, p.cursor, p.limit, "feature flags")
    return r.ExperimentalFeatureListResponse(data=data, next_cursor=next_cursor)


METHODS: dict[str, Handler] = {
    "config/read": config_read,
    "experimentalFeature/list": experimental_feature_list,
}
