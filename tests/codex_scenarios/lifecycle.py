"""diff.py scenario for thread/fork, thread/revert, thread/metadata/update,
thread/inject_items and thread/delete: run with

    python3 ../shared/codex-reference/diff.py "serve.sh stdio" \\
        ".venv/bin/appserver --in-memory" --scenario tests/codex_scenarios/lifecycle.py

Expected differences (docs/codex-differences.md): errors carry `data` here (and -32602 for
shapes); a thread/fork, /read or /resume of a full history gets a `deprecationNotice` in
the reference; every thread/revert there unloads and reloads the thread (a `notLoaded`
then `idle` status pair) and a running turn ends with its status before `turn/completed`;
a delete during a turn closes it as a close does (no `idle` in between).
"""

from __future__ import annotations

from typing import Any

MISSING = "019a0000-0000-7000-8000-000000000000"
MESSAGE = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}


def scenario(s: Any) -> None:
    s.initialize()
    tid = s.start_thread()
    s.turn(tid, "/say one")
    s.turn(tid, "/say two")
    read = s.request("thread/read", {"threadId": tid, "includeTurns": True}) or {}
    turns = [t["id"] for t in (read.get("result") or {}).get("thread", {}).get("turns", [])]
    first = turns[0] if turns else MISSING

    # thread/fork: whole, through a turn, without turns; then the errors.
    fork = s.request("thread/fork", {"threadId": tid}) or {}
    s.settle(0.3)
    fid = ((fork.get("result") or {}).get("thread") or {}).get("id", MISSING)
    s.request("thread/fork", {"threadId": tid, "lastTurnId": first, "excludeTurns": True})
    s.settle(0.3)
    again = s.request("thread/fork", {"threadId": fid, "excludeTurns": True}) or {}
    s.settle(0.3)
    ffid = ((again.get("result") or {}).get("thread") or {}).get("id", MISSING)
    s.request("thread/fork", {"threadId": tid, "ephemeral": True})
    s.request("thread/fork", {"threadId": tid, "path": "/tmp/rollout.jsonl"})
    s.request("thread/fork", {"threadId": MISSING})
    s.request("thread/fork", {"threadId": tid, "lastTurnId": "nope"})
    s.turn(fid, "/say on the fork")

    # thread/metadata/update: patch, clear, errors.
    s.request("thread/metadata/update", {"threadId": tid, "gitInfo": {"branch": "main"}})
    s.request(
        "thread/metadata/update", {"threadId": tid, "gitInfo": {"sha": "abc", "branch": None}}
    )
    s.request("thread/metadata/update", {"threadId": tid, "gitInfo": {}})
    s.request("thread/metadata/update", {"threadId": tid})
    s.request("thread/metadata/update", {"threadId": tid, "gitInfo": {"branch": ""}})
    s.request("thread/read", {"threadId": tid})

    # thread/inject_items: accepted, invisible; errors.
    s.request("thread/inject_items", {"threadId": tid, "items": [MESSAGE]})
    s.request("thread/inject_items", {"threadId": tid, "items": []})
    s.request("thread/inject_items", {"threadId": MISSING, "items": [MESSAGE]})
    s.request("thread/read", {"threadId": tid})

    # thread/revert: before the second turn, then errors.
    second = turns[1] if len(turns) > 1 else MISSING
    s.request("thread/revert", {"threadId": tid, "beforeTurnId": second})
    s.settle(0.5)
    s.request("thread/revert", {"threadId": MISSING, "beforeTurnId": second})
    s.request("thread/turns/list", {"threadId": tid})

    # thread/delete: an idle fork (of a fork: the reference refuses to delete a thread
    # that forks were made from), an unknown thread, then a thread mid-turn.
    s.request("thread/delete", {"threadId": ffid})
    s.settle(0.5)
    s.request("thread/delete", {"threadId": MISSING})
    doomed = s.start_thread()
    s.request(
        "turn/start",
        {"threadId": doomed, "input": [{"type": "text", "text": "/stream 2 4\n/sleep 5"}]},
    )
    s.wait_for("item/completed", pred=lambda m: m["params"]["item"]["type"] == "agentMessage")
    s.request("thread/delete", {"threadId": doomed})
    s.settle(0.5)
    s.request("thread/loaded/list", {})
