"""diff.py scenarios for the account, configuration, model and feature methods, the Codex
features appserver does not host, and the experimentalApi gate (issue 12).

    python3 ../shared/codex-reference/diff.py "serve.sh stdio" \
        "$PWD/.venv/bin/appserver --in-memory" --scenario tests/codex_scenarios/settings.py \
        --scenario tests/codex_scenarios/settings.py:experimental

Each function takes one diff.py `Session`; this file is run by diff.py, not by pytest.
"""

from __future__ import annotations

from typing import Any

GRANULAR = {"granular": {"mcp_elicitations": True, "rules": True, "sandbox_approval": True}}


def scenario(s: Any) -> None:
    """the five methods, their paging and bad params; not-hosted and not-yet methods"""
    s.initialize()
    s.request("account/read", {})
    s.request("account/read", {"refreshToken": True})
    s.request("config/read", {})
    s.request("config/read", {"includeLayers": True, "cwd": s.cwd})
    s.request("model/list", {})
    s.request("model/list", {"limit": 1, "includeHidden": True})
    s.request("model/list", {"cursor": "abc"})
    s.request("model/list", {"limit": "x"})
    s.request("modelProvider/list", {})
    s.request("experimentalFeature/list", {})
    s.request("experimentalFeature/list", {"limit": 2})
    s.request("experimentalFeature/list", {"threadId": "00000000-0000-7000-8000-000000000000"})
    for method in (
        "plugin/list",
        "skills/list",
        "app/list",
        "mcpServerStatus/list",
        "account/rateLimits/read",
        "feedback/upload",
        "thread/fork",
        "turn/steer",
    ):
        s.request(method, {})


def experimental(s: Any) -> None:
    """experimental fields on a connection that did not opt in"""
    s.initialize()
    tid = s.start_thread()
    s.request("thread/start", {"cwd": s.cwd, "dynamicTools": []})
    s.request("thread/start", {"cwd": s.cwd, "approvalPolicy": GRANULAR})
    s.request("thread/start", {"cwd": s.cwd, "dynamicTools": [], "permissions": "x"})
    s.request("thread/resume", {"threadId": tid, "history": []})
    s.request("thread/list", {"projectId": None})
    s.request(
        "turn/start",
        {
            "threadId": tid,
            "input": [{"type": "text", "text": "hi"}],
            "collaborationMode": {"mode": "default", "settings": {"model": "m"}},
        },
    )
