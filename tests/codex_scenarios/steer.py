"""diff.py scenario for turn/steer: run with

    python3 ../shared/codex-reference/diff.py "serve.sh stdio" \\
        ".venv/bin/appserver --in-memory" --scenario tests/codex_scenarios/steer.py

A `/sleep` turn steered with plain text; then the refusals: a wrong `expectedTurnId`, a
finished turn, an idle thread, an unknown thread, empty input.

Expected differences: errors carry `data` here (PROTOCOL.md §12); the reference's fake model
answers the steered input in a new model response within the same turn, the builtin agent
as PROTOCOL.md §10 says (the same items: the steered userMessage, then an agentMessage).
"""

from __future__ import annotations

from typing import Any

MISSING = "019a0000-0000-7000-8000-000000000000"


def scenario(s: Any) -> None:
    s.initialize()
    tid = s.start_thread()
    reply = s.request(
        "turn/start", {"threadId": tid, "input": [{"type": "text", "text": "/sleep 3"}]}
    )
    turn_id = ((reply or {}).get("result") or {}).get("turn", {}).get("id")
    s.wait_for("turn/started")
    s.settle(0.5)
    steer = {"threadId": tid, "expectedTurnId": turn_id}
    s.request("turn/steer", {**steer, "expectedTurnId": MISSING, "input": [_text("wrong")]})
    s.request("turn/steer", {**steer, "input": [_text("steered")]})
    s.wait_for("turn/completed")
    s.settle(0.5)
    s.request("turn/steer", {**steer, "input": [_text("too late")]})
    s.request("turn/steer", {**steer, "threadId": MISSING, "input": [_text("nobody")]})
    s.request("turn/steer", {**steer, "input": []})


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text, "text_elements": []}
