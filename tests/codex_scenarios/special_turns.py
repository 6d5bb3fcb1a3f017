"""diff.py scenario for thread/compact/start, thread/shellCommand and review/start: run with

    python3 ../shared/codex-reference/diff.py "serve.sh stdio" \\
        ".venv/bin/appserver --in-memory" --scenario tests/codex_scenarios/special_turns.py

Takes one diff.py `Session`; run by diff.py, not by pytest. Expected differences
(docs/codex-differences.md): the turn end order (§6), error `data` and codes; a review:
the reference sends `enteredReviewMode` before `turn/started` with a second turn id, an
agent message it never completes, and a `review/start` turn holding the label as a
userMessage; appserver streams the review's agent message as one delta; a compaction
or review while a turn runs is refused here (the reference interrupts that turn).
"""

from __future__ import annotations

import subprocess
from typing import Any

MISSING = "019a0000-0000-7000-8000-000000000000"


def scenario(s: Any) -> None:
    subprocess.run(
        "git init -q -b main . && git -c user.email=a@b -c user.name=t commit -q "
        "--allow-empty -m first",
        shell=True,
        cwd=s.cwd,
        check=False,
    )
    s.initialize()
    tid = s.start_thread()
    # compaction: of an empty thread, then after a turn
    s.request("thread/compact/start", {"threadId": tid})
    s.wait_for("turn/completed")
    s.settle(0.5)
    s.turn(tid, "hello")
    s.request("thread/compact/start", {"threadId": tid})
    s.wait_for("turn/completed")
    s.settle(0.5)
    # user shell commands: a failing exit, an immediate timeout, a timeout mid-output
    s.request("thread/shellCommand", {"threadId": tid, "command": "echo hi; exit 3"})
    s.wait_for("turn/completed")
    s.settle(0.5)
    s.request("thread/shellCommand", {"threadId": tid, "command": "sleep 5", "timeoutMs": 0})
    s.wait_for("turn/completed")
    s.settle(0.5)
    command = "echo a; sleep 5; echo b"
    s.request("thread/shellCommand", {"threadId": tid, "command": command, "timeoutMs": 300})
    s.wait_for("turn/completed")
    s.settle(0.5)
    # interrupted
    s.request("thread/shellCommand", {"threadId": tid, "command": "echo start; sleep 30"})
    started = s.wait_for("turn/started")
    s.wait_for("item/commandExecution/outputDelta")
    turn_id = ((started or {}).get("params") or {}).get("turn", {}).get("id")
    s.request("turn/interrupt", {"threadId": tid, "turnId": turn_id})
    s.wait_for("turn/completed")
    s.settle(0.5)
    # reviews
    for target in (
        {"type": "uncommittedChanges"},
        {"type": "baseBranch", "branch": "main"},
        {"type": "commit", "sha": "0123456789abcdef", "title": "first"},
        {"type": "custom", "instructions": "look at f.txt"},
    ):
        s.request("review/start", {"threadId": tid, "target": target, "delivery": "inline"})
        s.wait_for("turn/completed")
        s.settle(0.5)
    # inside a running turn (the reference then also answers the command's output)
    text = [{"type": "text", "text": "/sleep 1\n/say ok"}]
    s.request("turn/start", {"threadId": tid, "input": text})
    s.wait_for("turn/started")
    s.settle(0.3)
    s.request("thread/shellCommand", {"threadId": tid, "command": "echo inside"})
    s.wait_for("turn/completed")
    s.settle(1.5)
    # errors
    for method, params in (
        ("thread/compact/start", {"threadId": MISSING}),
        ("thread/shellCommand", {"threadId": MISSING, "command": "true"}),
        ("thread/shellCommand", {"threadId": tid, "command": "  "}),
        ("thread/shellCommand", {"threadId": tid, "command": "true", "timeoutMs": -1}),
        ("review/start", {"threadId": MISSING, "target": {"type": "uncommittedChanges"}}),
        ("review/start", {"threadId": tid, "target": {"type": "custom", "instructions": ""}}),
        ("review/start", {"threadId": tid, "target": {"type": "nope"}}),
        (
            "review/start",
            {
                "threadId": tid,
                "target": {"type": "custom", "instructions": "x"},
                "delivery": "detached",
            },
        ),
    ):
        s.request(method, params)
    s.request("thread/read", {"threadId": tid, "includeTurns": True})
    s.settle(0.3)
