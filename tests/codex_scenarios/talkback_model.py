"""The reference kit's fake model (../shared/codex-reference/fake_model.py), extended for
tests/codex_scenarios/talkback.py: talkback_serve.sh runs the kit's own serve.sh with this
file as its `fake_model.py`. It loads the kit's module and replaces its `plan` and
`stream_response`, so that the directives of PROTOCOL.md §10 that talk back become function
calls of the reference's tools, one per model response:

  /tool NAME JSON        a call to NAME (a dynamic tool) with JSON; once answered, the message
                         `tool NAME returned: T` (the output's text items joined by newlines)
  /plan STEP [| STEP]…   calls to `update_plan` as the builtin agent sends its updates
  /ask QUESTION [| OPT]… a call to `request_user_input`; once answered `You answered: A`
  /run CMD               as the kit's (a call to `exec_command`, then `done`)

Every other directive is the kit's. Not run by pytest; typed like the other scenarios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Callable
from typing import Any

KIT = os.environ.get("TALKBACK_KIT") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "codex-reference"
)
_spec = importlib.util.spec_from_file_location("kit_fake_model", os.path.join(KIT, "fake_model.py"))
assert _spec is not None and _spec.loader is not None
kit: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kit)

Step = tuple[Any, ...]  # ("msg", words) | ("sleep", s) | ("call", name, args) | ("text", fn)
Outputs = list[Any]


def outputs_after_last_user(body: dict[str, Any]) -> Outputs:
    outputs: Outputs = []
    for item in body.get("input") or []:
        if not isinstance(item, dict):
            continue
        if item.get("role") == "user" and item.get("type", "message") == "message":
            outputs = []
        elif item.get("type") in ("function_call_output", "custom_tool_call_output"):
            outputs.append(item.get("output"))
    return outputs


def output_text(output: Any) -> str:
    """The text of a tool output: content items' text, or a user-input answer."""
    if isinstance(output, str):
        try:
            output = json.loads(output)
        except ValueError:
            return str(output)
    if isinstance(output, dict) and isinstance(output.get("answers"), dict):
        return ", ".join(output["answers"].get("q1", {}).get("answers", []))
    if isinstance(output, list):
        texts = [o.get("text", "") for o in output if isinstance(o, dict) and "text" in o]
        return "\n".join(texts)
    return json.dumps(output)


def plan_calls(steps: list[str]) -> list[Step]:
    calls: list[Step] = []
    for done in range(len(steps) + 1):
        entries = [
            {
                "step": step,
                "status": "completed" if i < done else "in_progress" if i == done else "pending",
            }
            for i, step in enumerate(steps)
        ]
        calls.append(("call", "update_plan", {"plan": entries}))
    return calls


def reply(template: str, index: int) -> Step:
    def make(outputs: Outputs) -> str:
        return template + (output_text(outputs[index]) if index < len(outputs) else "")

    return ("text", make)


def all_steps(text: str) -> list[Step]:
    steps: list[Step] = []
    plain: list[str] = []
    calls = 0
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        if s.startswith("/tool "):
            name, _, args = s[6:].partition(" ")
            steps.append(("call", name, json.loads(args or "null")))
            steps.append(reply(f"tool {name} returned: ", calls))
            calls += 1
        elif s.startswith("/plan "):
            parts = [p.strip() for p in s[6:].split("|") if p.strip()]
            steps.extend(plan_calls(parts))
            calls += len(parts) + 1
        elif s.startswith("/ask "):
            question, *options = [p.strip() for p in s[5:].split("|")]
            entry = {
                "id": "q1",
                "header": "Question",
                "question": question,
                "options": [{"label": o, "description": ""} for o in options if o],
            }
            steps.append(("call", "request_user_input", {"questions": [entry]}))
            steps.append(reply("You answered: ", calls))
            calls += 1
        elif s.startswith("/run "):
            steps.append(("call", "exec_command", {"cmd": s[5:]}))
            steps.append(("msg", ["done"]))
            calls += 1
        else:
            for kind, *rest in kit.plan({"input": [{"role": "user", "content": line}]}):
                if kind == "msg" and rest[0][0].startswith("You said: "):
                    plain.append(s)
                elif kind != "msg" or rest[0] != ["Hello", " from", " fake", " model"]:
                    steps.append((kind, *rest))
    if plain:
        steps.insert(0, ("msg", ["You said: " + "\n".join(plain)]))
    return steps


def plan(body: dict[str, Any]) -> list[Step]:
    """This response's steps: those after the calls already answered, up to the next call."""
    text, _ = kit.last_user_text(body)
    outputs = outputs_after_last_user(body)
    steps = all_steps(text) or [("msg", ["Hello", " from", " fake", " model"])]
    seen, out = 0, []
    for step in steps:
        if seen == len(outputs):
            if step[0] == "text":
                step = ("msg", re.findall(r"\S+\s*|\s+", step[1](outputs)))
            out.append(step)
            if step[0] == "call":
                break
        if step[0] == "call":
            seen += 1
    return out or [("msg", ["done"])]


async def stream_response(body: dict[str, Any], writer: Any) -> dict[str, Any]:
    n = next(kit._ctr)
    rid = f"resp_{n}"
    sse: Callable[[dict[str, Any]], bytes] = kit.sse
    buf = [sse({"type": "response.created", "response": {"id": rid}})]
    total = 0
    steps = plan(body)
    for oi, st in enumerate(steps):
        if st[0] == "sleep":
            writer.write(b"".join(buf))
            buf.clear()
            await writer.drain()
            await asyncio.sleep(st[1])
        elif st[0] == "call":
            item = {
                "type": "function_call",
                "id": f"fc_{n}",
                "call_id": f"call_{n}_{oi}",
                "name": st[1],
                "arguments": json.dumps(st[2]),
            }
            buf.append(
                sse({"type": "response.output_item.added", "output_index": oi, "item": item})
            )
            buf.append(sse({"type": "response.output_item.done", "output_index": oi, "item": item}))
        else:
            mid = f"msg_{n}_{oi}"
            message = {"type": "message", "id": mid, "role": "assistant", "content": []}
            buf.append(
                sse({"type": "response.output_item.added", "output_index": oi, "item": message})
            )
            for d in st[1]:
                delta = {"item_id": mid, "output_index": oi, "content_index": 0, "delta": d}
                buf.append(sse({"type": "response.output_text.delta", **delta}))
            total += len(st[1])
            done = {**message, "content": [{"type": "output_text", "text": "".join(st[1])}]}
            buf.append(sse({"type": "response.output_item.done", "output_index": oi, "item": done}))
    usage = {
        "input_tokens": 10,
        "input_tokens_details": None,
        "output_tokens": total,
        "output_tokens_details": None,
        "total_tokens": 10 + total,
    }
    buf.append(sse({"type": "response.completed", "response": {"id": rid, "usage": usage}}))
    writer.write(b"".join(buf))
    await writer.drain()
    return {"steps": [s[0] for s in steps], "deltas": total}


kit.plan = plan
kit.stream_response = stream_response

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="the kit's fake model, calling tools too")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--batch", type=int, default=256)
    kit.ARGS = ap.parse_args(sys.argv[1:])
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(kit.main())
