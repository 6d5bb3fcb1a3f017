"""diff.py scenario for the requests and notifications of agents that talk back (issue
15): run with the kit's serve.sh wrapped so that its fake model also calls tools
(talkback_serve.sh, talkback_model.py):

    python3 ../shared/codex-reference/diff.py "tests/codex_scenarios/talkback_serve.sh stdio" \\
        ".venv/bin/appserver --in-memory" --scenario tests/codex_scenarios/talkback.py

A thread with dynamic tools (experimentalApi); a `/tool` turn (answered), an `/ask` turn
(in the reference's plan collaboration mode, the only one offering `request_user_input`).
The kit's configuration offers no `update_plan` tool, so `/plan` cannot be compared.
Takes one diff.py `Session`; run by diff.py, not by pytest. Expected differences:
docs/codex-differences.md, "Agents that talk back".
"""

from __future__ import annotations

from typing import Any

TOOL = {
    "type": "function",
    "name": "lookup",
    "description": "Look a word up",
    "inputSchema": {"type": "object", "properties": {"word": {"type": "string"}}},
}


def answer(s: Any, message: dict[str, Any]) -> dict[str, Any] | None:
    method = message.get("method")
    if method == "item/tool/call":
        return {"contentItems": [{"type": "inputText", "text": "a word"}], "success": True}
    if method == "item/tool/requestUserInput":
        return {"answers": {"q1": {"answers": ["red"]}}}
    return {"decision": "accept"}


def scenario(s: Any) -> None:
    s.on_server_request = answer
    s.request(
        "initialize",
        {
            "clientInfo": {"name": "diffpy", "version": "0"},
            "capabilities": {"experimentalApi": True},
        },
    )
    s.notify("initialized")
    s.settle(0.3)
    reply = s.request("thread/start", {"cwd": s.cwd, "dynamicTools": [TOOL]})
    tid = ((reply or {}).get("result") or {}).get("thread", {}).get("id")
    s.settle(0.3)
    s.turn(tid, '/tool lookup {"word": "trio"}')
    # The reference offers request_user_input only in plan mode (experimental).
    plan_mode = {"mode": "plan", "settings": {"model": "fake-model", "reasoning_effort": None}}
    s.turn(tid, "/ask Which colour? | red | blue", collaborationMode=plan_mode)
