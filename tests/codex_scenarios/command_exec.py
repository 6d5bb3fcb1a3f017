"""diff.py scenario for command/exec and its follow-ups (issue 14).

    python3 ../shared/codex-reference/diff.py "serve.sh stdio" \
        "$PWD/.venv/bin/appserver --in-memory" --scenario tests/codex_scenarios/command_exec.py

Takes one diff.py `Session`; run by diff.py, not by pytest. Expected differences: error
`data`, a missing command (Codex: exit 101 from its sandbox helper), stdout that is not
UTF-8, and how output is split into deltas.
"""

from __future__ import annotations

import base64
from typing import Any


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def scenario(s: Any) -> None:
    """buffered, streamed, PTY, terminate, timeout, cap and the errors"""
    s.initialize()
    s.request("command/exec", {"command": ["sh", "-c", "echo out; echo err >&2; exit 3"]})
    s.request("command/exec", {"command": ["sh", "-c", "echo $FOO"], "env": {"FOO": "bar"}})
    s.request("command/exec", {"command": ["sh", "-c", "echo 0123456789"], "outputBytesCap": 4})
    s.request("command/exec", {"command": ["sleep", "5"], "timeoutMs": 200})
    s.request("command/exec", {"command": []})
    s.request("command/exec", {"command": ["true"], "tty": True})
    s.request("command/exec", {"command": ["true"], "size": {"rows": 5, "cols": 5}})
    s.request("command/exec", {"command": ["true"], "timeoutMs": 5, "disableTimeout": True})
    s.request("command/exec", {"command": ["true"], "outputBytesCap": 5, "disableOutputCap": True})
    s.request("command/exec", {"command": ["true"], "cwd": "/nonexistent-dir"})
    for method in ("command/exec/write", "command/exec/terminate"):
        s.request(method, {"processId": "nope"})
    s.request("command/exec/resize", {"processId": "nope", "size": {"rows": 5, "cols": 5}})
    s.send(
        {
            "id": 100,
            "method": "command/exec",
            "params": {
                "command": ["cat"],
                "processId": "cat",
                "streamStdin": True,
                "streamStdoutStderr": True,
            },
        }
    )
    s.settle(0.5)
    s.request("command/exec/write", {"processId": "cat", "deltaBase64": b64("hello\n")})
    s.wait_for("command/exec/outputDelta")
    s.request("command/exec/resize", {"processId": "cat", "size": {"rows": 5, "cols": 5}})
    s.request("command/exec", {"command": ["cat"], "processId": "cat"})
    s.request("command/exec/write", {"processId": "cat", "deltaBase64": "!!", "closeStdin": True})
    s.request("command/exec/write", {"processId": "cat", "closeStdin": True})
    s.wait_for(pred=lambda m: False, timeout=0.5)
    s.send(
        {
            "id": 101,
            "method": "command/exec",
            "params": {
                "command": ["sh", "-c", "stty size; read x; echo got $x"],
                "processId": "t",
                "tty": True,
                "size": {"rows": 10, "cols": 40},
            },
        }
    )
    s.wait_for("command/exec/outputDelta")
    s.request("command/exec/resize", {"processId": "t", "size": {"rows": 20, "cols": 60}})
    s.request("command/exec/write", {"processId": "t", "deltaBase64": b64("abc\n")})
    s.settle(0.5)
    s.send(
        {
            "id": 102,
            "method": "command/exec",
            "params": {"command": ["sleep", "30"], "processId": "sl"},
        }
    )
    s.settle(0.3)
    s.request("command/exec/terminate", {"processId": "sl"})
    s.settle(0.3)
